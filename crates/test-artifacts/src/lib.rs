//! Paths to the guest test programs, built from `guests/test-programs` (for
//! `wasm32-wasip1`, and with a `P2_` prefix for `wasm32-wasip2`) and
//! `guests/http-handlers` (`HTTP_HANDLER`, for `wasm32-wasip2`) by this
//! crate's build script. Only a dev-dependency: the test programs never reach
//! a release build.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

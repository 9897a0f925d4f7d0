//! Paths to the guest test programs, built from `guests/test-programs` for
//! `wasm32-wasip1` by this crate's build script. Only a dev-dependency: the
//! test programs never reach a release build.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

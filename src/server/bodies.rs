//! The body types the server speaks: request bodies (from the client, or
//! empty for an internal redirect) and response bodies (complete, a file,
//! or streamed from a guest).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Errors inside bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request body: from the client, or empty for an internal redirect.
pub type RequestBody = UnsyncBoxBody<Bytes, hyper::Error>;
/// A response body: complete, a file, or streamed from a guest.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

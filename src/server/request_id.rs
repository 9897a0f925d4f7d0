//! Request ids: taken from the client's `x-request-id` when it is a sane
//! token, else generated, so one id follows a request through proxies,
//! responses and logs.

use std::sync::Arc;

use http::HeaderMap;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id accepted from a client.
const MAX_LEN: usize = 128;

/// The request's id: the client's if it is 1 to 128 visible ASCII characters,
/// else a fresh random one.
pub fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(
            || uuid::Uuid::new_v4().simple().to_string().into(),
            Arc::from,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept_and_anything_else_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, "abc-123".parse().unwrap());
        assert_eq!(&*request_id(&headers), "abc-123");
        headers.insert(REQUEST_ID, "has space".parse().unwrap());
        assert_eq!(request_id(&headers).len(), 32);
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }
}

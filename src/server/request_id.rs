//! Request ids: taken from the client's `x-request-id` when it is a sane
//! token, else generated, so one id follows a request through proxies,
//! responses and logs. A generated id is 32 hex digits: a random prefix
//! drawn once per process, then a counter, so making one costs no random
//! draw (ids correlate log lines; they are not secrets).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use http::HeaderMap;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id accepted from a client.
const MAX_LEN: usize = 128;

/// The request's id: the client's if it is 1 to 128 visible ASCII characters,
/// else a fresh one.
pub fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(fresh_id, Arc::from)
}

/// This process's random prefix of generated ids.
static PREFIX: LazyLock<u64> = LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);

/// Generated ids so far.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new id: the prefix and the next count, in hex.
fn fresh_id() -> Arc<str> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 32];
    for (i, digit) in id.iter_mut().enumerate() {
        let (word, shift) = if i < 16 {
            (*PREFIX, 60 - 4 * i)
        } else {
            (count, 60 - 4 * (i - 16))
        };
        *digit = HEX[((word >> shift) & 0xf) as usize];
    }
    std::str::from_utf8(&id)
        .expect("hex digits are ASCII")
        .into()
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

    #[test]
    fn generated_ids_share_the_prefix_and_never_repeat() {
        let ids: Vec<_> = (0..1000).map(|_| request_id(&HeaderMap::new())).collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| id[..16] == ids[0][..16]));
        assert!(
            ids.iter()
                .all(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }
}

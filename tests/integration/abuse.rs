//! A bounded abuse run: a few hundred hostile and normal requests mixed, in
//! parallel. Every normal request must succeed with its own answer.

use std::time::Duration;

use futures::StreamExt;

use crate::support::{Server, client};

#[tokio::test]
async fn normal_requests_all_succeed_amid_hostile_ones() {
    let server = Server::start(&[
        "--timeout",
        "500ms",
        "--max-memory",
        "32MiB",
        "--max-output",
        "256KiB",
    ]);
    let hostile = ["spin", "alloc", "print", "stderr", "read"];
    let client = client();
    let results: Vec<(usize, Option<bool>)> = futures::stream::iter(0..300)
        .map(|i| {
            let client = client.clone();
            let server = &server;
            async move {
                if i % 3 == 0 {
                    let url = server.cgi(&format!(
                        "hostile.wasm?{}",
                        hostile[(i / 3) % hostile.len()]
                    ));
                    let response = client
                        .get(url)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    if let Ok(response) = response {
                        let _ = response.bytes().await;
                    }
                    (i, None)
                } else {
                    let body = format!("normal request {i}");
                    let response = client
                        .post(server.cgi("cat.wasm"))
                        .body(body.clone())
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    let ok = match response {
                        Ok(response) if response.status() == 200 => {
                            response.text().await.ok() == Some(body)
                        }
                        _ => false,
                    };
                    (i, Some(ok))
                }
            }
        })
        .buffer_unordered(24)
        .collect()
        .await;
    let failed: Vec<usize> = results
        .iter()
        .filter(|(_, ok)| *ok == Some(false))
        .map(|(i, _)| *i)
        .collect();
    assert!(failed.is_empty(), "normal requests that failed: {failed:?}");
    assert_eq!(results.iter().filter(|(_, ok)| ok.is_some()).count(), 200);
    assert!(server.is_healthy().await);
}

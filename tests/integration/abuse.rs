//! A bounded abuse run: every hostile module, command and client the limits
//! guard against, mixed in parallel with normal requests. Every normal
//! request must succeed with its own answer, and the server's resident
//! memory must stay under a stated bound.

use std::io::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::support::{HANDLER, P2_PROGRAMS, Server, client, twins};

/// How much the server's peak resident memory may grow over the run: the
/// guests' own linear memories (at most `--max-memory` each, a few dozen
/// at once) and the buffers of the requests in flight.
const MEMORY_BOUND_MIB: u64 = 256;

const CONFIG: &str = r#"modules = "modules"
[limits]
timeout = "500ms"
max_memory = "32MiB"
max_output = "256KiB"
max_body = "1MiB"

[[route]]
path = "/open/..."
module = "hostile.wasm"
args = ["open-files", "/data/data.txt"]
query_args = false
dirs = [{ host = "data", guest = "/data" }]
"#;

/// Hostile ways to call the hostile program.
const HOSTILE: &[&str] = &[
    "spin",
    "alloc",
    "print",
    "stderr",
    "read",
    "header",
    "huge-write",
    "many-headers",
    "compute-sleep+100+300",
    "big-memory+24",
];

/// Clients that misbehave on their own socket for `hold`: one that reads
/// nothing of a response that never ends, one that declares a body and
/// stalls, one that never finishes its head.
fn hostile_clients(server: &Server, hold: Duration) -> Vec<std::thread::JoinHandle<()>> {
    let addr = server.addr;
    let requests = [
        "GET /cgi-bin/wasm-run.cgi/hostile.wasm?print HTTP/1.1\r\nHost: h\r\n\r\n".to_owned(),
        "POST /cgi-bin/wasm-run.cgi/cat.wasm HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nonly this".to_owned(),
        "GET /healthz HTTP/1.1\r\nHost: h\r\nX-Drip: ".to_owned(),
    ];
    requests
        .into_iter()
        .cycle()
        .take(9)
        .map(|request| {
            std::thread::spawn(move || {
                let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
                    return;
                };
                let _ = stream.write_all(request.as_bytes());
                std::thread::sleep(hold);
            })
        })
        .collect()
}

#[tokio::test]
async fn normal_requests_all_succeed_amid_every_hostile_module_and_client() {
    let mut programs = P2_PROGRAMS.to_vec();
    programs.push(HANDLER);
    let server = Server::with_config_and(CONFIG, &programs, &[]);
    let before = server.peak_rss_kib();
    let started = Instant::now();
    let bad_clients = hostile_clients(&server, Duration::from_secs(8));
    let client = client();
    let hostile_names = twins("hostile.wasm");
    let results: Vec<(usize, Option<bool>)> = futures::stream::iter(0..400)
        .map(|i| {
            let client = client.clone();
            let server = &server;
            let hostile_names = &hostile_names;
            async move {
                let normal = match i % 4 {
                    0 => {
                        let mode = HOSTILE[(i / 4) % HOSTILE.len()];
                        let name = &hostile_names[(i / 4 / HOSTILE.len()) % 2];
                        Some(server.cgi(&format!("{name}?{mode}")))
                    }
                    1 if i % 8 == 1 => Some(server.url("/open/x")),
                    // A client that gives up at once.
                    1 => {
                        let _ = client
                            .get(server.cgi("sleep.wasm?2000"))
                            .timeout(Duration::from_millis(30))
                            .send()
                            .await;
                        return (i, None);
                    }
                    _ => None,
                };
                if let Some(url) = normal {
                    if let Ok(response) = client
                        .get(url)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await
                    {
                        let _ = response.bytes().await;
                    }
                    return (i, None);
                }
                let body = format!("normal request {i}");
                let url = match i % 3 {
                    0 => server.cgi("cat.wasm"),
                    1 => server.cgi("cat-p2.wasm"),
                    _ => server.cgi("handler.wasm/echo-body"),
                };
                let response = client
                    .post(url)
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
    let grew_mib = server.peak_rss_kib().saturating_sub(before) / 1024;
    assert!(
        grew_mib < MEMORY_BOUND_MIB,
        "peak resident memory grew by {grew_mib} MiB (bound {MEMORY_BOUND_MIB} MiB)"
    );
    eprintln!(
        "abuse run: {} requests in {:?}, peak resident memory +{grew_mib} MiB",
        results.len(),
        started.elapsed()
    );
    for bad in bad_clients {
        let _ = bad.join();
    }
}

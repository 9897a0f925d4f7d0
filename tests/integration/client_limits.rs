//! The front door's per-client rules: rate limits (429 with `Retry-After`
//! past the burst, recovery after the refill, a bucket table that stays
//! bounded under many addresses) and trusted proxies (forwarding headers
//! believed only from a listed peer). Distinct clients are distinct
//! loopback addresses: 127.0.0.2 and up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::{Server, client, client_from, get_text, parse_env, sample};

/// `env-dump.wasm`'s environment as `client` sees it, with `headers`.
async fn env_via(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    parse_env(&response.text().await.unwrap())
}

fn var<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str)
}

/// `GET url` from `client`: its status and `Retry-After`.
async fn status_of(client: &reqwest::Client, url: &str) -> (u16, Option<String>) {
    let response = client.get(url).send().await.unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after)
}

#[tokio::test]
async fn past_the_burst_a_client_gets_429_with_retry_after_and_recovers_after_the_refill() {
    let server = Server::start(&["--rate", "10/s", "--burst", "2"]);
    let url = server.cgi("env-dump.wasm");
    // All at once: the burst is served, the rest refused. However slow the
    // machine, 12 requests can't all find a token: at 10/s, 10 more would
    // need a whole second.
    let started = Instant::now();
    let answers = futures::future::join_all((0..12).map(|_| async {
        let response = client().get(&url).send().await.unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        let status = response.status().as_u16();
        (status, retry_after, response.text().await.unwrap())
    }))
    .await;
    let elapsed = started.elapsed();
    let served = answers.iter().filter(|answer| answer.0 == 200).count();
    let refused: Vec<_> = answers.iter().filter(|answer| answer.0 == 429).collect();
    assert_eq!(served + refused.len(), answers.len(), "{answers:?}");
    let most = 2 + (elapsed.as_secs_f64() * 10.0).ceil() as usize;
    assert!(
        (2..=most).contains(&served),
        "{served} served in {elapsed:?}"
    );
    assert!(!refused.is_empty(), "none refused in {elapsed:?}");
    for (_, retry_after, body) in &refused {
        assert_eq!(retry_after.as_deref(), Some("1"), "a token is 100 ms away");
        assert!(body.contains("too many requests"), "{body}");
    }
    // Another client has a bucket of its own.
    assert_eq!(status_of(&client_from("127.0.0.2"), &url).await.0, 200);

    // After the Retry-After (wide: the machine may be loaded), served again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(status_of(&client(), &url).await.0, 200);

    let metrics = get_text(&server.url("/metrics")).await;
    let counted = sample(
        &metrics,
        "wasm_cgi_rate_limited_total{route=\"/cgi-bin/wasm-run.cgi/...\"}",
    );
    assert_eq!(counted, Some(refused.len() as f64), "{metrics}");
    assert!(
        !metrics.contains("127.0.0.1\""),
        "never labelled by address:\n{metrics}"
    );
    let line = server.wait_for_line(&["status=429", "client=127.0.0.1"]);
    assert!(
        line.contains("/cgi-bin/wasm-run.cgi/env-dump.wasm"),
        "{line}"
    );
}

#[tokio::test]
async fn each_route_has_its_own_rate_and_off_lifts_the_servers() {
    let server = Server::with_config(
        r#"
modules = "modules"
[limits]
rate = "1/h"
[[route]]
path = "/hourly"
module = "env-dump.wasm"
[[route]]
path = "/free"
module = "env-dump.wasm"
[route.limits]
rate = "off"
[[route]]
path = "/twice"
module = "env-dump.wasm"
[route.limits]
rate = "2/h"
"#,
        &[],
    );
    let client = client();
    let hourly = server.url("/hourly");
    assert_eq!(status_of(&client, &hourly).await, (200, None));
    let (status, retry_after) = status_of(&client, &hourly).await;
    assert_eq!(status, 429);
    let retry_after: u64 = retry_after.unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    // The folder's scope is another bucket, under the same server rate.
    assert_eq!(
        status_of(&client, &server.cgi("env-dump.wasm")).await.0,
        200
    );
    assert_eq!(
        status_of(&client, &server.cgi("env-dump.wasm")).await.0,
        429
    );
    for _ in 0..5 {
        assert_eq!(status_of(&client, &server.url("/free")).await.0, 200);
    }
    // `2/h`: its burst is 1 (the rate per second, rounded up).
    assert_eq!(status_of(&client, &server.url("/twice")).await.0, 200);
    assert_eq!(status_of(&client, &server.url("/twice")).await.0, 429);
    // A 404 costs no token; static and probe paths are never limited.
    for _ in 0..3 {
        assert_eq!(status_of(&client, &server.cgi("none.wasm")).await.0, 404);
        assert_eq!(status_of(&client, &server.url("/healthz")).await.0, 200);
    }
    let metrics = get_text(&server.url("/metrics")).await;
    for route in ["/hourly", "/twice", "/cgi-bin/wasm-run.cgi/..."] {
        let name = format!("wasm_cgi_rate_limited_total{{route=\"{route}\"}}");
        assert_eq!(sample(&metrics, &name), Some(1.0), "{name}\n{metrics}");
    }
}

#[tokio::test]
async fn the_bucket_table_stays_bounded_while_many_addresses_hit() {
    // A table of 16 buckets (two sets), and 60 clients.
    let server = Server::start(&["--rate", "1/h", "--rate-table-size", "16"]);
    let url = server.cgi("env-dump.wasm");
    let clients: Vec<reqwest::Client> = (2..62)
        .map(|n| client_from(&format!("127.0.0.{n}")))
        .collect();
    let mut most = 0.0f64;
    for batch in clients.chunks(10) {
        let statuses =
            futures::future::join_all(batch.iter().map(|client| status_of(client, &url))).await;
        // An evicted bucket starts afresh, never stricter: every new
        // address is served.
        assert!(statuses.iter().all(|s| s.0 == 200), "{statuses:?}");
        let metrics = get_text(&server.url("/metrics")).await;
        let entries = sample(&metrics, "wasm_cgi_rate_limit_entries").unwrap();
        assert_eq!(sample(&metrics, "wasm_cgi_rate_limit_capacity"), Some(16.0));
        assert!(entries <= 16.0, "{entries} buckets in a table of 16");
        most = most.max(entries);
    }
    assert_eq!(most, 16.0, "the table filled up");
    let metrics = get_text(&server.url("/metrics")).await;
    let evictions = sample(&metrics, "wasm_cgi_rate_limit_evictions_total").unwrap();
    assert!(evictions >= 60.0 - 16.0, "{evictions}\n{metrics}");

    // With the default table, 60 addresses are 60 buckets.
    let server = Server::start(&["--rate", "1/h"]);
    let url = server.cgi("env-dump.wasm");
    futures::future::join_all(clients.iter().map(|client| status_of(client, &url))).await;
    let metrics = get_text(&server.url("/metrics")).await;
    assert_eq!(sample(&metrics, "wasm_cgi_rate_limit_entries"), Some(60.0));
    assert_eq!(
        sample(&metrics, "wasm_cgi_rate_limit_capacity"),
        Some(16384.0)
    );
    // And each holds: the second request of a client is refused.
    assert_eq!(status_of(&clients[7], &url).await.0, 429);
}

#[tokio::test]
async fn forwarded_headers_are_honoured_only_from_a_trusted_peer() {
    let server = Server::with_config(
        "modules = \"modules\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
        &[],
    );
    let url = server.cgi("env-dump.wasm");
    let proxy = client(); // from 127.0.0.1
    let stranger = client_from("127.0.0.2");

    let xff = [
        ("X-Forwarded-For", "198.51.100.9, 203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
    ];
    let env = env_via(&proxy, &url, &xff).await;
    assert_eq!(var(&env, "REMOTE_ADDR"), Some("203.0.113.7"));
    assert_eq!(var(&env, "REMOTE_HOST"), Some("203.0.113.7"));
    assert_eq!(var(&env, "REMOTE_PORT"), None, "the proxy gave none");
    assert_eq!(var(&env, "HTTPS"), Some("on"));
    assert_eq!(var(&env, "REQUEST_SCHEME"), Some("https"));
    assert_eq!(
        var(&env, "HTTP_X_FORWARDED_FOR"),
        Some("198.51.100.9, 203.0.113.7"),
        "still passed as a header"
    );
    server.wait_for_line(&["env-dump.wasm", "client=203.0.113.7"]);

    let forwarded = [
        ("Forwarded", "for=\"[2001:db8::7]:4711\";proto=https"),
        ("X-Forwarded-For", "192.0.2.1"),
    ];
    let env = env_via(&proxy, &url, &forwarded).await;
    assert_eq!(
        var(&env, "REMOTE_ADDR"),
        Some("2001:db8::7"),
        "Forwarded wins"
    );
    assert_eq!(var(&env, "REMOTE_PORT"), Some("4711"));
    assert_eq!(var(&env, "HTTPS"), Some("on"));

    for headers in [&xff[..], &forwarded[..]] {
        let env = env_via(&stranger, &url, headers).await;
        assert_eq!(var(&env, "REMOTE_ADDR"), Some("127.0.0.2"), "{headers:?}");
        assert!(var(&env, "REMOTE_PORT").is_some());
        assert_eq!(var(&env, "HTTPS"), None);
        assert_eq!(var(&env, "REQUEST_SCHEME"), Some("http"));
    }

    // Hostile chains: thousands of hops, garbage, an unclosed quote.
    let long = vec!["10.0.0.1"; 2000].join(", ");
    let env = env_via(&proxy, &url, &[("X-Forwarded-For", &long)]).await;
    assert_eq!(var(&env, "REMOTE_ADDR"), Some("10.0.0.1"));
    let env = env_via(&proxy, &url, &[("Forwarded", "for=\"[::1;proto=https,,;=")]).await;
    assert_eq!(
        var(&env, "REMOTE_ADDR"),
        Some("127.0.0.1"),
        "unknown: the proxy itself"
    );

    // Without trusted_proxies, nobody's headers count.
    let plain = Server::start(&[]);
    let env = env_via(&proxy, &plain.cgi("env-dump.wasm"), &xff).await;
    assert_eq!(var(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(var(&env, "REQUEST_SCHEME"), Some("http"));
    assert_eq!(var(&env, "HTTPS"), None);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let server = Server::with_config(
        "modules = \"modules\"\ntrusted_proxies = [\"127.0.0.1\"]\n[limits]\nrate = \"1/h\"\n",
        &[],
    );
    let url = server.cgi("env-dump.wasm");
    let via = |client: &str| {
        let request = crate::support::client()
            .get(&url)
            .header("X-Forwarded-For", client);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(via("203.0.113.1").await, 200);
    assert_eq!(via("203.0.113.1").await, 429);
    assert_eq!(via("203.0.113.2").await, 200);
    // IPv6 clients share a bucket per /64.
    assert_eq!(via("2001:db8:1:2::1").await, 200);
    assert_eq!(via("2001:db8:1:2::ffff").await, 429);
    assert_eq!(via("2001:db8:1:3::1").await, 200);
    // A stranger's header is ignored: its bucket is its own address's.
    let stranger = client_from("127.0.0.3")
        .get(&url)
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 200);
    let again = client_from("127.0.0.3")
        .get(&url)
        .header("X-Forwarded-For", "203.0.113.10")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 429, "a forged header buys no new bucket");
}

#[tokio::test]
async fn internal_redirects_within_a_scope_cost_no_second_token() {
    // redirect-loop.wasm redirects to itself until the hop limit (500).
    let server = Server::start(&["--rate", "1/h", "--mode", "cgi"]);
    let url = server.cgi("redirect-loop.wasm");
    assert_eq!(
        status_of(&client(), &url).await.0,
        500,
        "six hops, one token"
    );
    assert_eq!(status_of(&client(), &url).await.0, 429);
}

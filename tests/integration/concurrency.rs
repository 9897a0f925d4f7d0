//! Requests in parallel each get their own fresh instance: nothing leaks
//! from one request to another, module or command.

use crate::support::{Server, argv, client, parse_env, twins};

#[tokio::test]
async fn sixty_four_concurrent_requests_each_get_their_own_query() {
    let server = Server::start_all(&[]);
    let client = client();
    for name in twins("env-dump.wasm") {
        let requests = (0..64).map(|i| {
            let request = client
                .post(server.cgi(&format!("{name}/{i}?word{i}")))
                .header("X-Index", i.to_string())
                .body(format!("body {i}"))
                .send();
            async move { (i, request.await.unwrap().text().await.unwrap()) }
        });
        for (i, body) in futures::future::join_all(requests).await {
            let env = parse_env(&body);
            assert_eq!(argv(&env), [name.clone(), format!("word{i}")]);
            assert_eq!(env["QUERY_STRING"], format!("word{i}"));
            assert_eq!(env["PATH_INFO"], format!("/{i}"));
            assert_eq!(env["HTTP_X_INDEX"], i.to_string());
            assert_eq!(env["CONTENT_LENGTH"], format!("body {i}").len().to_string());
        }
    }
}

//! Requests in parallel each get their own fresh instance: nothing leaks
//! from one request to another.

use crate::support::{Server, argv, client, parse_env};

#[tokio::test]
async fn sixty_four_concurrent_requests_each_get_their_own_query() {
    let server = Server::start(&[]);
    let client = client();
    let requests = (0..64).map(|i| {
        let request = client
            .post(server.cgi(&format!("env-dump.wasm/{i}?word{i}")))
            .header("X-Index", i.to_string())
            .body(format!("body {i}"))
            .send();
        async move { (i, request.await.unwrap().text().await.unwrap()) }
    });
    for (i, body) in futures::future::join_all(requests).await {
        let env = parse_env(&body);
        assert_eq!(argv(&env), ["env-dump.wasm".to_owned(), format!("word{i}")]);
        assert_eq!(env["QUERY_STRING"], format!("word{i}"));
        assert_eq!(env["PATH_INFO"], format!("/{i}"));
        assert_eq!(env["HTTP_X_INDEX"], i.to_string());
        assert_eq!(env["CONTENT_LENGTH"], format!("body {i}").len().to_string());
    }
}

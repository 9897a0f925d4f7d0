//! Per-route capabilities: granted directories, read-only by default;
//! nothing outside them reachable, by `..` or by symlink.

use crate::support::{Server, client};

const GRANTS: &str = r#"
modules = "modules"

[[route]]
path = "/ro/..."
module = "fs.wasm"
dirs = [{ host = "data", guest = "/data" }]

[[route]]
path = "/rw/..."
module = "fs.wasm"
dirs = [{ host = "data", guest = "/data", read_only = false }]

[[route]]
path = "/none/..."
module = "fs.wasm"
"#;

async fn fs(server: &Server, route: &str, query: &str) -> (u16, String) {
    let response = client()
        .get(server.url(&format!("/{route}?{query}")))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_read_only_grant_can_be_read_and_not_written() {
    let server = Server::with_config(GRANTS, &[]);
    assert_eq!(
        fs(&server, "ro", "read+/data/data.txt").await,
        (200, "granted data\n".to_owned())
    );
    assert_eq!(fs(&server, "ro", "write+/data/new.txt+x").await.0, 500);
    assert!(!server.modules.path().join("data/new.txt").exists());
}

#[tokio::test]
async fn a_read_write_grant_can_be_written() {
    let server = Server::with_config(GRANTS, &[]);
    assert_eq!(
        fs(&server, "rw", "write+/data/new.txt+written").await.0,
        200
    );
    let written = std::fs::read_to_string(server.modules.path().join("data/new.txt")).unwrap();
    assert_eq!(written, "written");
}

#[tokio::test]
async fn without_a_grant_no_file_is_reachable() {
    let server = Server::with_config(GRANTS, &[]);
    assert_eq!(fs(&server, "none", "read+/data/data.txt").await.0, 500);
    assert_eq!(fs(&server, "none", "read+/etc/passwd").await.0, 500);
    assert_eq!(fs(&server, "none", "read+wasm-cgi.toml").await.0, 500);
}

#[tokio::test]
async fn escapes_by_dot_dot_and_symlink_are_refused() {
    let server = Server::with_config(GRANTS, &[]);
    let root = server.modules.path();
    std::fs::write(root.join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), root.join("data/link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("data/etc")).unwrap();
    for query in [
        "read+/data/../secret.txt",
        "read+/data/../../etc/passwd",
        "read+/data/link.txt",
        "read+/data/etc/passwd",
        "read+/secret.txt",
    ] {
        let (status, body) = fs(&server, "rw", query).await;
        assert_eq!(status, 500, "{query} gave {body:?}");
        assert!(
            !body.contains("outside") && !body.contains("root:"),
            "{query} leaked {body:?}"
        );
    }
    assert_eq!(
        fs(&server, "rw", "write+/data/../escaped.txt+x").await.0,
        500
    );
    assert!(!root.join("escaped.txt").exists());
}

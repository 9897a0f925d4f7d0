//! Per-route capabilities: granted directories, read-only by default;
//! nothing outside them reachable, by `..` or by symlink. Each case runs
//! with the routes over `fs.wasm`, then over its `-p2` command twin.

use crate::support::{P2_PROGRAMS, Server, config_twins, timed_get, twins};

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

/// A server over [`GRANTS`] as written, then one with the `-p2` twin in
/// its routes, each with the name of the program it routes to.
fn servers() -> impl Iterator<Item = (String, Server)> {
    config_twins(GRANTS)
        .into_iter()
        .zip(twins("fs.wasm"))
        .map(|(config, name)| (name, Server::with_config_and(&config, P2_PROGRAMS, &[])))
}

async fn fs(server: &Server, route: &str, query: &str) -> (u16, String) {
    let (status, body, _) = timed_get(&server.url(&format!("/{route}?{query}"))).await;
    (status, body)
}

#[tokio::test]
async fn a_read_only_grant_can_be_read_and_not_written() {
    for (name, server) in servers() {
        assert_eq!(
            fs(&server, "ro", "read+/data/data.txt").await,
            (200, "granted data\n".to_owned()),
            "{name}"
        );
        assert_eq!(fs(&server, "ro", "write+/data/new.txt+x").await.0, 500);
        assert!(
            !server.modules.path().join("data/new.txt").exists(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_read_write_grant_can_be_written() {
    for (name, server) in servers() {
        assert_eq!(
            fs(&server, "rw", "write+/data/new.txt+written").await.0,
            200,
            "{name}"
        );
        let written = std::fs::read_to_string(server.modules.path().join("data/new.txt")).unwrap();
        assert_eq!(written, "written");
    }
}

#[tokio::test]
async fn without_a_grant_no_file_is_reachable() {
    for (name, server) in servers() {
        for query in [
            "read+/data/data.txt",
            "read+/etc/passwd",
            "read+wasm-cgi.toml",
        ] {
            assert_eq!(fs(&server, "none", query).await.0, 500, "{name}: {query}");
        }
    }
}

#[tokio::test]
async fn escapes_by_dot_dot_and_symlink_are_refused() {
    for (name, server) in servers() {
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
            assert_eq!(status, 500, "{name}: {query} gave {body:?}");
            assert!(
                !body.contains("outside") && !body.contains("root:"),
                "{name}: {query} leaked {body:?}"
            );
        }
        assert_eq!(
            fs(&server, "rw", "write+/data/../escaped.txt+x").await.0,
            500,
            "{name}"
        );
        assert!(!root.join("escaped.txt").exists(), "{name}");
    }
}

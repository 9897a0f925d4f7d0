//! Route parameters in wasm-cgi's own config: `/users/:id/posts/:post`
//! matches one segment per parameter and passes `ROUTE_PARAM_ID` and
//! `ROUTE_PARAM_POST`, URL-decoded; an exact route beats a parameter route,
//! which beats a prefix, and the most specific prefix wins.

use crate::support::{Server, argv, client, get_text, parse_env};

const ROUTES: &str = r#"
modules = "modules"

[[route]]
path = "/users/..."
module = "env-dump.wasm"
args = ["prefix"]

[[route]]
path = "/users/:id"
module = "env-dump.wasm"
args = ["user"]

[[route]]
path = "/users/me"
module = "env-dump.wasm"
args = ["exact"]
env = { ROUTE_PARAM_ID = "set by the route" }

[[route]]
path = "/users/:id/posts/:post"
module = "env-dump.wasm"
args = ["post"]

[[route]]
path = "/users/:id/files/..."
module = "env-dump.wasm"
args = ["files"]
"#;

#[tokio::test]
async fn parameters_are_passed_decoded_and_the_most_specific_route_wins() {
    let server = Server::with_config(ROUTES, &[]);
    let env = |path: &'static str| {
        let url = server.url(path);
        async move { parse_env(&get_text(&url).await) }
    };

    let post = env("/users/a%20b/posts/7").await;
    assert_eq!(argv(&post)[1], "post");
    assert_eq!(post["ROUTE_PARAM_ID"], "a b");
    assert_eq!(post["ROUTE_PARAM_POST"], "7");
    assert_eq!(post["SCRIPT_NAME"], "/users/a%20b/posts/7");
    assert_eq!(post["PATH_INFO"], "");

    let user = env("/users/42").await;
    assert_eq!(argv(&user)[1], "user");
    assert_eq!(user["ROUTE_PARAM_ID"], "42");

    let exact = env("/users/me").await;
    assert_eq!(argv(&exact)[1], "exact", "exact beats a parameter");
    assert_eq!(exact["ROUTE_PARAM_ID"], "set by the route");

    let files = env("/users/42/files/a/b.txt").await;
    assert_eq!(argv(&files)[1], "files");
    assert_eq!(files["ROUTE_PARAM_ID"], "42");
    assert_eq!(files["SCRIPT_NAME"], "/users/42/files");
    assert_eq!(files["PATH_INFO"], "/a/b.txt");

    let prefix = env("/users/42/other").await;
    assert_eq!(
        argv(&prefix)[1],
        "prefix",
        "a parameter matches one segment"
    );
    assert!(!prefix.contains_key("ROUTE_PARAM_ID"));
    let empty = env("/users/").await;
    assert_eq!(
        argv(&empty)[1],
        "prefix",
        "a parameter matches no empty segment"
    );

    let status = client()
        .get(server.url("/users/%00/posts/1"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400, "a parameter holding NUL");
}

#[test]
fn two_routes_matching_the_same_paths_are_refused() {
    let dir = crate::support::config_dir(
        "modules = \"modules\"\n[[route]]\npath = \"/u/:a\"\nmodule = \"cat.wasm\"\n\
         [[route]]\npath = \"/u/:b\"\nmodule = \"cat.wasm\"\n",
    );
    let (code, _, stderr) =
        crate::support::run_in(dir.path(), &["check", "--config", "wasm-cgi.toml"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("wasm-cgi.toml:6: route /u/:b is defined twice"),
        "{stderr}"
    );
}

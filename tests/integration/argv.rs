//! argv per RFC 3875 section 4.4: the program name, then the search words
//! of a query without an unencoded `=`; for modules and commands alike.

use crate::support::{Server, argv, get_text, parse_env, twins};

#[tokio::test]
async fn argv_follows_the_search_word_rules() {
    let server = Server::start_all(&[]);
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("?one", &["one"]),
        ("?one+two+three", &["one", "two", "three"]),
        ("?hello%20world+caf%C3%A9", &["hello world", "café"]),
        ("?a%2Bb", &["a+b"]),
        ("?%3D", &["="]),
        ("?key=value", &[]),
        ("?a+b=c", &[]),
        ("?ok+%FF", &[]),
        ("?ok+%00", &[]),
    ];
    for name in twins("env-dump.wasm") {
        for (query, words) in cases {
            let body = get_text(&server.cgi(&format!("{name}{query}"))).await;
            let mut expected = vec![name.clone()];
            expected.extend(words.iter().map(|w| w.to_string()));
            assert_eq!(argv(&parse_env(&body)), expected, "{name}, query {query:?}");
        }
    }
}

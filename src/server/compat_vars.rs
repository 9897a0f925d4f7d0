//! The variables beyond RFC 3875 that WAGI and Spin's WAGI executor give
//! their modules, for routes read from their files: `X_MATCHED_ROUTE`,
//! `X_FULL_URL`, `X_RAW_PATH_INFO` (WAGI); `X_FULL_URL`, `X_MATCHED_ROUTE`,
//! `X_COMPONENT_ROUTE`, `X_RAW_COMPONENT_ROUTE`, `X_BASE_PATH`,
//! `X_CLIENT_ADDR` and `X_PATH_MATCH_NAME` per route parameter (Spin).
//! Made from the meta-variables already computed, so both agree.

use crate::config::compat::Flavor;

/// What the route contributes.
pub struct RouteFacts<'a> {
    /// The route as written: `/hello/...`.
    pub matched_route: String,
    /// It without its wildcard: `/hello`.
    pub component_route: String,
    /// The rest of the path after `SCRIPT_NAME`, still percent-encoded.
    pub raw_path_info: &'a str,
    /// Route parameters: names as written, values decoded.
    pub params: &'a [(String, String)],
}

/// The variables of `flavor` for a request whose meta-variables are `meta`.
pub fn variables(
    flavor: Flavor,
    meta: &[(String, String)],
    route: &RouteFacts<'_>,
) -> Vec<(String, String)> {
    let get = |name: &str| {
        meta.iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    };
    let scheme = if get("HTTPS") == "on" {
        "https"
    } else {
        "http"
    };
    let host_port = format!("{}:{}", get("SERVER_NAME"), get("SERVER_PORT"));
    let var = |name: &str, value: String| (name.to_owned(), value);
    match flavor {
        Flavor::Wagi => vec![
            var("X_MATCHED_ROUTE", route.matched_route.clone()),
            var("X_RAW_PATH_INFO", route.raw_path_info.to_owned()),
            var(
                "X_FULL_URL",
                format!("{scheme}://{host_port}{}", get("REQUEST_URI")),
            ),
        ],
        Flavor::Spin => {
            let host = Some(get("HTTP_HOST"))
                .filter(|host| !host.is_empty())
                .map_or(host_port, str::to_owned);
            let remote = get("REMOTE_ADDR");
            let client = if remote.contains(':') {
                format!("[{remote}]:{}", get("REMOTE_PORT"))
            } else {
                format!("{remote}:{}", get("REMOTE_PORT"))
            };
            let mut vars = vec![
                var(
                    "X_FULL_URL",
                    format!("{scheme}://{host}{}", get("REQUEST_URI")),
                ),
                var("X_MATCHED_ROUTE", route.matched_route.clone()),
                var("X_RAW_COMPONENT_ROUTE", route.matched_route.clone()),
                var("X_COMPONENT_ROUTE", route.component_route.clone()),
                var("X_BASE_PATH", "/".to_owned()),
                var("X_CLIENT_ADDR", client),
            ];
            vars.extend(route.params.iter().map(|(name, value)| {
                (
                    format!("X_PATH_MATCH_{}", name.to_ascii_uppercase()),
                    value.clone(),
                )
            }));
            vars
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Vec<(String, String)> {
        [
            ("SERVER_NAME", "example.com"),
            ("SERVER_PORT", "3000"),
            ("REQUEST_URI", "/path/test%3brun?foo=bar"),
            ("HTTP_HOST", "example.com:3000"),
            ("REMOTE_ADDR", "192.168.0.1"),
            ("REMOTE_PORT", "4000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn value(vars: &[(String, String)], name: &str) -> String {
        vars.iter().find(|(k, _)| k == name).unwrap().1.clone()
    }

    #[test]
    fn wagi_and_spin_variables_are_those_their_docs_show() {
        let params = [("userid".to_owned(), "42".to_owned())];
        let route = RouteFacts {
            matched_route: "/path/...".into(),
            component_route: "/path".into(),
            raw_path_info: "/test%3brun",
            params: &params,
        };
        let wagi = variables(Flavor::Wagi, &meta(), &route);
        assert_eq!(value(&wagi, "X_MATCHED_ROUTE"), "/path/...");
        assert_eq!(value(&wagi, "X_RAW_PATH_INFO"), "/test%3brun");
        assert_eq!(
            value(&wagi, "X_FULL_URL"),
            "http://example.com:3000/path/test%3brun?foo=bar"
        );
        let spin = variables(Flavor::Spin, &meta(), &route);
        assert_eq!(value(&spin, "X_COMPONENT_ROUTE"), "/path");
        assert_eq!(value(&spin, "X_CLIENT_ADDR"), "192.168.0.1:4000");
        assert_eq!(value(&spin, "X_PATH_MATCH_USERID"), "42");
        assert_eq!(value(&spin, "X_BASE_PATH"), "/");
    }
}

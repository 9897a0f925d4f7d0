//! A route's path pattern as written in the config file: exact (`/report`)
//! or a prefix wildcard (`/api/...`), and how much of a request path it
//! matches.

/// A route's path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoutePath {
    /// Only this path.
    Exact(String),
    /// This path and everything below it (written `/api/...`).
    Prefix(String),
}

/// The suffix that makes a route path a prefix wildcard.
const WILDCARD: &str = "/...";

impl RoutePath {
    /// Parses a route path as written in the config file. Paths are matched
    /// against the request path as sent, so they may hold only characters
    /// that need no percent-encoding.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (path, prefix) = match text.strip_suffix(WILDCARD) {
            Some(path) => (path, true),
            None => (text, false),
        };
        if !text.starts_with('/') {
            return Err(format!("route path {text:?} must start with /"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "/-._~!$&'()*+,;=:@".contains(c);
        if !path.chars().all(allowed)
            || path.contains("//")
            || path.split('/').any(|s| s == "." || s == "..")
        {
            return Err(format!(
                "route path {text:?} may hold only letters, digits, single slashes and -._~!$&'()*+,;=:@"
            ));
        }
        Ok(if prefix {
            RoutePath::Prefix(path.to_owned())
        } else {
            RoutePath::Exact(path.to_owned())
        })
    }

    /// How much of `path` this pattern matches, if it matches.
    pub(crate) fn matched_len(&self, path: &str) -> Option<usize> {
        match self {
            RoutePath::Exact(exact) => (path == exact).then_some(exact.len()),
            RoutePath::Prefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then_some(prefix.len())
            }
        }
    }
}

impl std::fmt::Display for RoutePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoutePath::Exact(path) => f.write_str(path),
            RoutePath::Prefix(path) => write!(f, "{path}{WILDCARD}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_are_checked() {
        assert_eq!(
            RoutePath::parse("/a/..."),
            Ok(RoutePath::Prefix("/a".into()))
        );
        assert_eq!(RoutePath::parse("/..."), Ok(RoutePath::Prefix("".into())));
        for bad in ["report", "/a b", "/a//b", "/a/../b", "/%41", "/a?b"] {
            assert!(RoutePath::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}

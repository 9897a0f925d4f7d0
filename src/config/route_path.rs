//! A route's path pattern as written in the config file: exact (`/report`),
//! with parameters (`/users/:id`, one segment each), or a prefix wildcard
//! (`/api/...`, also after parameters: `/users/:id/...`); how much of a
//! request path it matches, and how specific the match is.
//!
//! When several patterns match, the most specific wins: an exact pattern
//! beats one with parameters, which beats a prefix; among prefixes the one
//! with more segments (the longest) wins; and where two still tie, the one
//! whose first differing segment is literal wins (`/users/me` over
//! `/users/:id`).

/// A route's path pattern.
#[derive(Debug, Clone)]
pub struct RoutePath {
    /// The `/`-separated pieces of the path before any wildcard, the first
    /// always empty (the path starts with `/`).
    segments: Vec<Segment>,
    /// Whether it ends in the wildcard `/...`.
    prefix: bool,
}

/// One `/`-separated piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this text (as sent: percent-encoded).
    Literal(String),
    /// `:name`: matches one non-empty segment, passed as `ROUTE_PARAM_NAME`.
    Param(String),
}

/// A pattern that matched a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMatch<'a> {
    /// How many bytes of the path it matched (the `SCRIPT_NAME` part).
    pub len: usize,
    /// Each parameter's name, as written, and the segment it matched, still
    /// percent-encoded.
    pub params: Vec<(&'a str, &'a str)>,
}

/// How specific a match is: compare two, the greater wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    /// 2 exact, 1 with parameters, 0 a prefix.
    class: u8,
    /// How many segments the pattern has.
    segments: usize,
    /// Which segments are literal, from the left.
    literal: Vec<bool>,
}

/// The suffix that makes a route path a prefix wildcard.
const WILDCARD: &str = "/...";

impl RoutePath {
    /// Parses a route path as written in the config file. Paths are matched
    /// against the request path as sent, so they may hold only characters
    /// that need no percent-encoding; a segment `:name` is a parameter
    /// (letters, digits and `_`, not starting with a digit; each name once).
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
        let mut segments = Vec::new();
        for piece in path.split('/') {
            match piece.strip_prefix(':') {
                None => segments.push(Segment::Literal(piece.to_owned())),
                Some(name) => {
                    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        return Err(format!(
                            "route path {text:?}: parameter {piece:?} must be `:` and a name of letters, digits and _"
                        ));
                    }
                    let upper = name.to_ascii_uppercase();
                    let repeated = segments.iter().any(|segment| {
                        matches!(segment, Segment::Param(other) if other.to_ascii_uppercase() == upper)
                    });
                    if repeated {
                        return Err(format!(
                            "route path {text:?}: parameter :{name} is named twice"
                        ));
                    }
                    segments.push(Segment::Param(name.to_owned()));
                }
            }
        }
        Ok(RoutePath { segments, prefix })
    }

    /// Whether the pattern ends in the wildcard `/...`.
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// Whether it has parameters.
    pub fn has_params(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Param(_)))
    }

    /// Whether `self` and `other` match exactly the same paths (parameter
    /// names aside): two such routes would be one too many.
    pub fn same_shape(&self, other: &RoutePath) -> bool {
        let shape = |path: &RoutePath| -> Vec<Option<String>> {
            path.segments
                .iter()
                .map(|segment| match segment {
                    Segment::Literal(text) => Some(text.clone()),
                    Segment::Param(_) => None,
                })
                .collect()
        };
        self.prefix == other.prefix && shape(self) == shape(other)
    }

    /// This pattern with `sub` appended (WAGI's sub-routes: `/example` and
    /// `/hello/...` give `/example/hello/...`); a pattern of its own
    /// wildcard is replaced by `sub`'s, and a doubled slash is not made.
    pub fn join(&self, sub: &RoutePath) -> RoutePath {
        let mut segments = self.segments.clone();
        if segments.len() > 1 && segments.last() == Some(&Segment::Literal(String::new())) {
            // `/` itself: its empty last piece is where `sub` goes.
            segments.pop();
        }
        let mut rest = sub.segments.iter().skip(1).cloned().peekable();
        if segments.len() > 1 && rest.peek() == Some(&Segment::Literal(String::new())) {
            // `sub` is `/`: `/example` + `/` is `/example`, not `/example/`.
            rest.next();
        }
        segments.extend(rest);
        RoutePath {
            segments,
            prefix: sub.prefix,
        }
    }

    /// How `path` (as sent, percent-encoded) matches this pattern, if it does.
    pub fn matches<'a>(&'a self, path: &'a str) -> Option<PathMatch<'a>> {
        let mut pieces = path.split('/');
        let mut len = 0;
        let mut params = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            let piece = pieces.next()?;
            match segment {
                Segment::Literal(text) if text == piece => {}
                Segment::Param(name) if !piece.is_empty() => params.push((name.as_str(), piece)),
                _ => return None,
            }
            len += piece.len() + usize::from(i > 0);
        }
        if !self.prefix && pieces.next().is_some() {
            return None;
        }
        Some(PathMatch { len, params })
    }

    /// How specific a match of this pattern is (see the module docs).
    pub fn specificity(&self) -> Specificity {
        let literal: Vec<bool> = self
            .segments
            .iter()
            .map(|segment| matches!(segment, Segment::Literal(_)))
            .collect();
        let class = match (self.prefix, self.has_params()) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => 2,
        };
        Specificity {
            class,
            segments: literal.len(),
            literal,
        }
    }

    /// The pattern without its wildcard and with its parameters as written:
    /// `/users/:id` for `/users/:id/...` (Spin's `X_COMPONENT_ROUTE`).
    pub fn base(&self) -> String {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => text.clone(),
                Segment::Param(name) => format!(":{name}"),
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl PartialEq for RoutePath {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.segments == other.segments
    }
}

impl Eq for RoutePath {}

impl std::fmt::Display for RoutePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base())?;
        if self.prefix {
            f.write_str(WILDCARD)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> RoutePath {
        RoutePath::parse(text).unwrap()
    }

    #[test]
    fn route_paths_are_checked() {
        assert!(path("/a/...").is_prefix());
        assert_eq!(path("/...").to_string(), "/...");
        assert_eq!(path("/users/:id/...").to_string(), "/users/:id/...");
        for bad in [
            "report",
            "/a b",
            "/a//b",
            "/a/../b",
            "/%41",
            "/a?b",
            "/u/:",
            "/u/:1d",
            "/u/:a-b",
            "/u/:id/:ID",
        ] {
            assert!(RoutePath::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn exact_and_prefix_paths_match_as_before() {
        let m = |pattern: &str, request: &str| path(pattern).matches(request).map(|m| m.len);
        assert_eq!(m("/report", "/report"), Some(7));
        assert_eq!(m("/report", "/report/"), None);
        assert_eq!(m("/report", "/report/x"), None);
        assert_eq!(m("/", "/"), Some(1));
        assert_eq!(m("/", "/x"), None);
        assert_eq!(m("/api/...", "/api"), Some(4));
        assert_eq!(m("/api/...", "/api/"), Some(4));
        assert_eq!(m("/api/...", "/api/x/y"), Some(4));
        assert_eq!(m("/api/...", "/apix"), None);
        assert_eq!(m("/...", "/anything"), Some(0));
        assert_eq!(m("/...", "/"), Some(0));
    }

    #[test]
    fn parameters_match_one_non_empty_segment_each() {
        let pattern = path("/users/:id/posts/:post");
        let found = pattern.matches("/users/7/posts/a%20b").unwrap();
        assert_eq!(found.len, "/users/7/posts/a%20b".len());
        assert_eq!(found.params, [("id", "7"), ("post", "a%20b")]);
        assert_eq!(pattern.matches("/users/7/posts"), None);
        assert_eq!(pattern.matches("/users//posts/1"), None);
        assert_eq!(pattern.matches("/users/7/posts/1/x"), None);
        let prefix = path("/users/:id/...");
        let found = prefix.matches("/users/7/avatar.png").unwrap();
        assert_eq!((found.len, found.params), (8, vec![("id", "7")]));
    }

    #[test]
    fn exact_beats_parameter_beats_prefix_and_longest_wins() {
        let rank = |text: &str| path(text).specificity();
        assert!(rank("/users/me") > rank("/users/:id"));
        assert!(rank("/users/:id") > rank("/users/..."));
        assert!(rank("/users/:id") > rank("/users/:id/..."));
        assert!(rank("/users/:id/posts/...") > rank("/users/..."));
        assert!(rank("/users/me/...") > rank("/users/:id/..."));
        assert!(rank("/a/:x/c") > rank("/a/:x/:y"));
        assert!(
            rank("/a/b/:y") > rank("/a/:x/c"),
            "the leftmost literal wins"
        );
        assert!(rank("/api/v2/...") > rank("/api/..."));
    }

    #[test]
    fn shapes_ignore_parameter_names() {
        assert!(path("/u/:a").same_shape(&path("/u/:b")));
        assert!(!path("/u/:a").same_shape(&path("/u/:a/...")));
        assert!(!path("/u/a").same_shape(&path("/u/:a")));
    }

    #[test]
    fn sub_routes_join_without_doubled_slashes() {
        let join = |a: &str, b: &str| path(a).join(&path(b)).to_string();
        assert_eq!(join("/example", "/hello"), "/example/hello");
        assert_eq!(join("/example", "/goodbye/..."), "/example/goodbye/...");
        assert_eq!(join("/example/...", "/hello"), "/example/hello");
        assert_eq!(join("/", "/hello"), "/hello");
        assert_eq!(join("/example", "/"), "/example");
        assert_eq!(join("/example", "/..."), "/example/...");
        assert_eq!(join("/", "/"), "/");
    }
}

//! The syntax of the headers proxies add: `Forwarded` (RFC 7239: `for=`,
//! `proto=`, quoted `"[v6]:port"` nodes, `unknown` and obfuscated ones)
//! and `X-Forwarded-For` / `X-Forwarded-Proto`. Only the parsing: whom to
//! believe is [`client_address`](super::client_address)'s business.
//!
//! These headers come from anyone, so the parser never panics, and keeps
//! only the last [`MAX_HOPS`] hops however many are sent: the request head
//! is bounded (64 KiB), and so is the work and memory here.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;

/// Hops kept from the right of a chain; those further left are never
/// looked at (no real chain of trusted proxies is this long).
pub const MAX_HOPS: usize = 32;

/// Who one hop says its client was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// An address, with the port when given.
    Addr {
        /// The address.
        ip: IpAddr,
        /// The port, if given (and not obfuscated).
        port: Option<u16>,
    },
    /// `unknown`, an obfuscated identifier, no `for=` at all, or a value
    /// that does not parse.
    Unknown,
}

/// One element of a chain: a proxy's account of the connection it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// Its client.
    pub node: Node,
    /// Whether that connection was https (`proto=`), if said.
    pub https: Option<bool>,
}

/// The last [`MAX_HOPS`] hops of a chain, leftmost (nearest the client)
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hops {
    /// The hops kept.
    pub hops: VecDeque<Hop>,
    /// What `X-Forwarded-Proto` says when it can't be matched to the hops
    /// one for one: its last value, set by the nearest proxy.
    pub fallback_https: Option<bool>,
}

impl Hops {
    fn push(&mut self, hop: Hop) {
        if self.hops.len() == MAX_HOPS {
            self.hops.pop_front();
        }
        self.hops.push_back(hop);
    }
}

/// The chain of the `Forwarded` headers, `None` without one.
pub fn forwarded(headers: &HeaderMap) -> Option<Hops> {
    let mut values = headers.get_all(http::header::FORWARDED).iter().peekable();
    values.peek()?;
    let mut chain = Hops::default();
    for value in values {
        let value = text(value.as_bytes());
        for element in split_unquoted(&value, b',') {
            if element.trim().is_empty() {
                continue;
            }
            chain.push(forwarded_element(element));
        }
    }
    Some(chain)
}

/// One `Forwarded` element: `for=...;proto=...;by=...`.
fn forwarded_element(element: &str) -> Hop {
    let mut hop = Hop {
        node: Node::Unknown,
        https: None,
    };
    for pair in split_unquoted(element, b';') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match name.trim() {
            name if name.eq_ignore_ascii_case("for") => hop.node = node(value),
            name if name.eq_ignore_ascii_case("proto") => hop.https = scheme(value),
            _ => {}
        }
    }
    hop
}

/// The chain of `X-Forwarded-For`, with `X-Forwarded-Proto` matched to it
/// one for one when both have as many entries; `None` when neither is sent.
pub fn x_forwarded(headers: &HeaderMap) -> Option<Hops> {
    let mut chain = Hops::default();
    let mut sent = false;
    let mut hops = 0usize;
    for value in headers.get_all("x-forwarded-for") {
        sent = true;
        for entry in text(value.as_bytes()).split(',') {
            hops = hops.saturating_add(1);
            chain.push(Hop {
                node: node(entry.trim()),
                https: None,
            });
        }
    }
    let mut protos: VecDeque<Option<bool>> = VecDeque::new();
    let mut proto_count = 0usize;
    for value in headers.get_all("x-forwarded-proto") {
        sent = true;
        for entry in text(value.as_bytes()).split(',') {
            proto_count = proto_count.saturating_add(1);
            if protos.len() == MAX_HOPS {
                protos.pop_front();
            }
            protos.push_back(scheme(entry.trim()));
        }
    }
    if !sent {
        return None;
    }
    if proto_count == hops {
        for (hop, https) in chain.hops.iter_mut().zip(protos) {
            hop.https = https;
        }
    } else {
        chain.fallback_https = protos.back().copied().flatten();
    }
    Some(chain)
}

/// A header value as text: invalid UTF-8 replaced (it then parses as
/// nothing useful, which is what it is).
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Splits `text` on `separator` outside quoted strings (a `\` escapes the
/// next character inside them). An unclosed quote runs to the end.
fn split_unquoted(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let bytes = current.as_bytes();
        let mut quoted = false;
        let mut escaped = false;
        for (at, &byte) in bytes.iter().enumerate() {
            match byte {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                _ if byte == separator && !quoted => {
                    rest = Some(&current[at + 1..]);
                    return Some(&current[..at]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(current)
    })
}

/// `value` without its surrounding quotes, if it has them.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value)
}

/// `proto=` / `X-Forwarded-Proto`: https (or wss) or http (or ws).
fn scheme(value: &str) -> Option<bool> {
    let value = unquote(value);
    if value.eq_ignore_ascii_case("https") || value.eq_ignore_ascii_case("wss") {
        Some(true)
    } else if value.eq_ignore_ascii_case("http") || value.eq_ignore_ascii_case("ws") {
        Some(false)
    } else {
        None
    }
}

/// A node: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`,
/// a bare `2001:db8::1` (as `X-Forwarded-For` writes it), or anything else
/// as [`Node::Unknown`]. An obfuscated port (`_x`) is no port.
fn node(value: &str) -> Node {
    let addr = |ip: IpAddr, port: Option<&str>| match port {
        None => Node::Addr { ip, port: None },
        Some(port) if port.starts_with('_') && port.len() > 1 => Node::Addr { ip, port: None },
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            match port.parse() {
                Ok(port) => Node::Addr {
                    ip,
                    port: Some(port),
                },
                Err(_) => Node::Unknown,
            }
        }
        Some(_) => Node::Unknown,
    };
    if let Some(rest) = value.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Node::Unknown;
        };
        let Ok(ip) = ip.parse::<Ipv6Addr>() else {
            return Node::Unknown;
        };
        return match after {
            "" => addr(IpAddr::V6(ip), None),
            _ => match after.strip_prefix(':') {
                Some(port) => addr(IpAddr::V6(ip), Some(port)),
                None => Node::Unknown,
            },
        };
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return addr(ip, None);
    }
    match value.split_once(':') {
        Some((ip, port)) => match ip.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => addr(IpAddr::V4(ip), Some(port)),
            Err(_) => Node::Unknown,
        },
        None => Node::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn at(text: &str, port: Option<u16>) -> Node {
        Node::Addr {
            ip: text.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn nodes_of_every_form_parse() {
        assert_eq!(node("192.0.2.60"), at("192.0.2.60", None));
        assert_eq!(node("192.0.2.60:8080"), at("192.0.2.60", Some(8080)));
        assert_eq!(node("[2001:db8:cafe::17]"), at("2001:db8:cafe::17", None));
        assert_eq!(
            node("[2001:db8:cafe::17]:4711"),
            at("2001:db8:cafe::17", Some(4711))
        );
        assert_eq!(node("2001:db8::1"), at("2001:db8::1", None));
        assert_eq!(node("192.0.2.60:_hidden"), at("192.0.2.60", None));
        for unknown in [
            "unknown",
            "_hidden",
            "",
            "example.com",
            "[2001:db8::1",
            "[192.0.2.1]",
            "[::1]x",
            "[::1]:",
            "1.2.3.4:99999",
            "1.2.3.4:+1",
            "1.2.3.4:_",
            "fe80::1%eth0",
        ] {
            assert_eq!(node(unknown), Node::Unknown, "{unknown:?}");
        }
    }

    #[test]
    fn forwarded_elements_give_for_and_proto() {
        let chain = forwarded(&headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=https;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
        )]))
        .unwrap();
        assert_eq!(
            Vec::from(chain.hops),
            [
                Hop {
                    node: at("192.0.2.60", None),
                    https: Some(true)
                },
                Hop {
                    node: at("2001:db8:cafe::17", Some(4711)),
                    https: None
                },
            ]
        );
    }

    #[test]
    fn quoted_separators_do_not_split_and_headers_chain_in_order() {
        let chain = forwarded(&headers(&[
            ("forwarded", "for=\"_a,b;c\";proto=http"),
            ("forwarded", "proto=https, for=10.0.0.1"),
        ]))
        .unwrap();
        let hops: Vec<Hop> = chain.hops.into();
        assert_eq!(hops.len(), 3, "{hops:?}");
        assert_eq!(hops[0].node, Node::Unknown);
        assert_eq!(hops[0].https, Some(false));
        assert_eq!(
            hops[1],
            Hop {
                node: Node::Unknown,
                https: Some(true)
            },
            "no for=: unknown"
        );
        assert_eq!(hops[2].node, at("10.0.0.1", None));
        assert_eq!(forwarded(&HeaderMap::new()), None);
    }

    #[test]
    fn x_forwarded_proto_matches_its_hops_one_for_one_or_falls_back_to_the_last() {
        let chain = x_forwarded(&headers(&[
            ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
            ("x-forwarded-proto", "https, http"),
        ]))
        .unwrap();
        assert_eq!(chain.hops[0].https, Some(true));
        assert_eq!(chain.hops[1].https, Some(false));
        assert_eq!(chain.fallback_https, None);

        let chain = x_forwarded(&headers(&[
            ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]))
        .unwrap();
        assert_eq!(chain.hops[0].https, None);
        assert_eq!(chain.fallback_https, Some(true));

        let chain = x_forwarded(&headers(&[("x-forwarded-proto", "https")])).unwrap();
        assert!(chain.hops.is_empty());
        assert_eq!(chain.fallback_https, Some(true));
        assert_eq!(x_forwarded(&HeaderMap::new()), None);
    }

    #[test]
    fn thousands_of_hops_keep_only_the_last_ones() {
        let many = (0..5000)
            .map(|i| format!("10.0.{}.{}", i / 256 % 256, i % 256))
            .collect::<Vec<_>>()
            .join(", ");
        let chain = x_forwarded(&headers(&[
            ("x-forwarded-for", &many),
            ("x-forwarded-for", "198.51.100.1"),
        ]))
        .unwrap();
        assert_eq!(chain.hops.len(), MAX_HOPS);
        assert_eq!(chain.hops.back().unwrap().node, at("198.51.100.1", None));
        let elements = vec!["for=10.0.0.1;proto=https"; 5000].join(",");
        let chain = forwarded(&headers(&[("forwarded", &elements)])).unwrap();
        assert_eq!(chain.hops.len(), MAX_HOPS);
        assert!(chain.hops.capacity() < 4 * MAX_HOPS);
    }

    #[test]
    fn bytes_that_are_not_utf8_parse_as_unknown() {
        let mut map = HeaderMap::new();
        map.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff\xfe, 10.0.0.1").unwrap(),
        );
        let chain = x_forwarded(&map).unwrap();
        assert_eq!(chain.hops[0].node, Node::Unknown);
        assert_eq!(chain.hops[1].node, at("10.0.0.1", None));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn any_header_parses_without_panic_into_at_most_max_hops(
                values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..6),
            ) {
                let mut map = HeaderMap::new();
                for value in &values {
                    if let Ok(value) = http::HeaderValue::from_bytes(value) {
                        map.append(http::header::FORWARDED, value.clone());
                        map.append("x-forwarded-for", value.clone());
                        map.append("x-forwarded-proto", value);
                    }
                }
                for chain in [forwarded(&map), x_forwarded(&map)].into_iter().flatten() {
                    prop_assert!(chain.hops.len() <= MAX_HOPS);
                }
            }

            #[test]
            fn forwarded_syntax_soup_never_panics(text in "[\\[\\]\":;,=_a-f0-9. \\\\forFORprotohttps]{0,120}") {
                if let Ok(value) = http::HeaderValue::from_str(&text) {
                    let mut map = HeaderMap::new();
                    map.append(http::header::FORWARDED, value);
                    let chain = forwarded(&map).unwrap();
                    prop_assert!(chain.hops.len() <= MAX_HOPS);
                }
            }
        }
    }
}

//! Who the client is: the TCP peer, unless the peer is a trusted proxy
//! (`trusted_proxies`), in which case its `Forwarded` header, or else
//! `X-Forwarded-For` / `X-Forwarded-Proto`, say. Worked out once per
//! request; `REMOTE_ADDR`, `REMOTE_PORT`, `HTTPS`, the access log and the
//! rate limiter all use the answer.
//!
//! The chain is walked from the right (the hop our peer added) leftwards,
//! past every trusted proxy: the first address that is not one is the
//! client. Everything left of it was written by that client and is not
//! believed. A hop that names no usable address (`unknown`, obfuscated,
//! garbage) ends the walk at the trusted proxy that reported it.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use super::forwarded::{self, Node};
use crate::proxies::TrustedProxies;

/// The client of one request, as far as the server can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    /// Its address (an IPv4-mapped IPv6 address as the IPv4 one).
    pub ip: IpAddr,
    /// Its port, when known: the peer's, or the one a trusted proxy gave.
    pub port: Option<u16>,
    /// What a trusted proxy said of the client's scheme (`proto=https`):
    /// `None` when no trusted proxy said.
    pub https_from_proxy: Option<bool>,
}

impl ClientAddress {
    /// The peer itself, as when no proxy is trusted.
    pub fn direct(peer: SocketAddr) -> Self {
        Self {
            ip: peer.ip().to_canonical(),
            port: Some(peer.port()),
            https_from_proxy: None,
        }
    }

    /// The client of a request from `peer` with `headers`: the peer, or,
    /// when it is a trusted proxy, whom its forwarding headers name.
    pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        let mut client = Self::direct(peer);
        if !trusted.contains(client.ip) {
            return client;
        }
        let Some(chain) = forwarded::forwarded(headers).or_else(|| forwarded::x_forwarded(headers))
        else {
            return client;
        };
        client.https_from_proxy = chain.fallback_https;
        for hop in chain.hops.iter().rev() {
            let https = hop.https.or(chain.fallback_https);
            match hop.node {
                Node::Unknown => {
                    client.https_from_proxy = https;
                    return client;
                }
                Node::Addr { ip, port } => {
                    client = Self {
                        ip: ip.to_canonical(),
                        port,
                        https_from_proxy: https,
                    };
                    if !trusted.contains(client.ip) {
                        return client;
                    }
                }
            }
        }
        // Trusted all the way (or as far as the hops kept go): the
        // leftmost is where the request came from.
        client
    }

    /// Whether the client's request is https: what a trusted proxy said,
    /// else whether the connection it came in on is TLS (`over_tls`). The
    /// one place `HTTPS` and `REQUEST_SCHEME` are decided.
    pub fn is_https(&self, over_tls: bool) -> bool {
        self.https_from_proxy.unwrap_or(over_tls)
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

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries.iter().copied()).unwrap()
    }

    fn client(peer: &str, pairs: &[(&str, &str)], trust: &[&str]) -> ClientAddress {
        ClientAddress::resolve(peer.parse().unwrap(), &headers(pairs), &trusted(trust))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let sent = [
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=203.0.113.9;proto=https"),
        ];
        let expected = ClientAddress {
            ip: ip("127.0.0.2"),
            port: Some(5000),
            https_from_proxy: None,
        };
        assert_eq!(client("127.0.0.2:5000", &sent, &["127.0.0.1"]), expected);
        assert_eq!(
            client("127.0.0.2:5000", &sent, &[]),
            expected,
            "none by default"
        );
    }

    #[test]
    fn a_trusted_peer_names_the_client_and_its_scheme() {
        let found = client(
            "10.0.0.5:4000",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
            &["10.0.0.0/8"],
        );
        assert_eq!(
            found,
            ClientAddress {
                ip: ip("203.0.113.9"),
                port: None,
                https_from_proxy: Some(true),
            }
        );
        assert!(found.is_https(false));
        let found = client(
            "[::1]:4000",
            &[("forwarded", "for=\"[2001:db8::7]:4711\";proto=http")],
            &["::1"],
        );
        assert_eq!(
            found,
            ClientAddress {
                ip: ip("2001:db8::7"),
                port: Some(4711),
                https_from_proxy: Some(false),
            }
        );
        assert!(!found.is_https(true), "the proxy's word wins");
    }

    #[test]
    fn the_walk_skips_trusted_hops_and_stops_at_the_first_untrusted_one() {
        // The client forged the leftmost entry; our proxies appended the rest.
        let found = client(
            "10.0.0.1:1",
            &[(
                "x-forwarded-for",
                "6.6.6.6, 198.51.100.4, 10.0.0.3, 10.0.0.2",
            )],
            &["10.0.0.0/8"],
        );
        assert_eq!(found.ip, ip("198.51.100.4"));
        let found = client(
            "10.0.0.1:1",
            &[(
                "forwarded",
                "for=6.6.6.6;proto=https, for=198.51.100.4;proto=http, for=10.0.0.2",
            )],
            &["10.0.0.0/8"],
        );
        assert_eq!(
            (found.ip, found.https_from_proxy),
            (ip("198.51.100.4"), Some(false))
        );
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for() {
        let found = client(
            "127.0.0.1:1",
            &[
                ("x-forwarded-for", "192.0.2.1"),
                ("forwarded", "for=192.0.2.2"),
            ],
            &["127.0.0.1"],
        );
        assert_eq!(found.ip, ip("192.0.2.2"));
    }

    #[test]
    fn an_unknown_hop_ends_the_walk_at_the_proxy_that_reported_it() {
        let found = client(
            "10.0.0.1:1",
            &[(
                "forwarded",
                "for=6.6.6.6, for=unknown;proto=https, for=10.0.0.2",
            )],
            &["10.0.0.0/8"],
        );
        assert_eq!(
            found,
            ClientAddress {
                ip: ip("10.0.0.2"),
                port: None,
                https_from_proxy: Some(true),
            }
        );
        let found = client(
            "10.0.0.1:7",
            &[("x-forwarded-for", "6.6.6.6, garbage")],
            &["10.0.0.0/8"],
        );
        assert_eq!((found.ip, found.port), (ip("10.0.0.1"), Some(7)));
    }

    #[test]
    fn a_chain_trusted_all_the_way_gives_its_leftmost_address() {
        let found = client(
            "10.0.0.1:1",
            &[("x-forwarded-for", "10.9.9.9, 10.0.0.2")],
            &["10.0.0.0/8"],
        );
        assert_eq!(found.ip, ip("10.9.9.9"));
    }

    #[test]
    fn mapped_addresses_count_as_ipv4() {
        let found = client(
            "[::ffff:127.0.0.1]:80",
            &[("x-forwarded-for", "::ffff:203.0.113.1")],
            &["127.0.0.1"],
        );
        assert_eq!(found.ip, ip("203.0.113.1"));
        let direct = ClientAddress::direct("[::ffff:192.0.2.1]:9".parse().unwrap());
        assert_eq!(direct.ip, ip("192.0.2.1"));
    }

    #[test]
    fn a_proto_alone_sets_only_the_scheme() {
        let found = client(
            "127.0.0.1:3",
            &[("x-forwarded-proto", "https")],
            &["127.0.0.1"],
        );
        assert_eq!(
            found,
            ClientAddress {
                ip: ip("127.0.0.1"),
                port: Some(3),
                https_from_proxy: Some(true),
            }
        );
        assert!(!ClientAddress::direct("127.0.0.1:3".parse().unwrap()).is_https(false));
        assert!(ClientAddress::direct("127.0.0.1:3".parse().unwrap()).is_https(true));
    }
}

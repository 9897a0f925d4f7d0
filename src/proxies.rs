//! `trusted_proxies`: the peers whose `Forwarded` / `X-Forwarded-*`
//! headers the server believes, as networks (`10.0.0.0/8`) or plain
//! addresses (`127.0.0.1`, `::1`). Empty unless configured: by default no
//! peer is trusted and those headers are ordinary request headers.

use std::net::IpAddr;

use ipnet::IpNet;

/// Most entries a list may hold; a longer list is a configuration mistake
/// (and every request walks it).
pub const MAX_TRUSTED_PROXIES: usize = 1024;

/// The trusted proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses one entry: a network in CIDR notation or a plain address
    /// (a host: `/32` or `/128`). An IPv4-mapped IPv6 entry means its IPv4
    /// address.
    pub fn parse_entry(text: &str) -> Result<IpNet, String> {
        let wrong = || {
            format!(
                "trusted proxy {text:?} is not an IP address or network; write e.g. \"10.0.0.0/8\", \"127.0.0.1\" or \"::1\""
            )
        };
        let net = if text.contains('/') {
            text.parse::<IpNet>().map_err(|_| wrong())?
        } else {
            IpNet::from(text.parse::<IpAddr>().map_err(|_| wrong())?)
        };
        Ok(canonical_net(net))
    }

    /// Parses every entry, or says which is wrong.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut networks = Vec::new();
        for entry in entries {
            networks.push(Self::parse_entry(entry)?);
        }
        Self::from_networks(networks)
    }

    /// A list of `networks`, at most [`MAX_TRUSTED_PROXIES`].
    pub fn from_networks(networks: Vec<IpNet>) -> Result<Self, String> {
        if networks.len() > MAX_TRUSTED_PROXIES {
            return Err(format!(
                "{} trusted proxies: at most {MAX_TRUSTED_PROXIES} (use networks)",
                networks.len()
            ));
        }
        let mut networks: Vec<IpNet> = networks.into_iter().map(canonical_net).collect();
        networks.sort();
        networks.dedup();
        Ok(Self { networks })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `addr` is a trusted proxy (an IPv4-mapped IPv6 address as its
    /// IPv4 one, as a dual-stack listener reports IPv4 peers).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.networks.iter().any(|net| net.contains(&addr))
    }
}

/// `net` with an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the
/// IPv4 one it maps, and host bits cleared.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped).trunc();
    }
    net.trunc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_and_plain_addresses_are_trusted() {
        let trusted =
            TrustedProxies::parse(["10.0.0.0/8", "127.0.0.1", "::1", "2001:db8::/32"]).unwrap();
        for yes in [
            "10.1.2.3",
            "127.0.0.1",
            "::1",
            "2001:db8:1::5",
            "::ffff:10.9.9.9",
        ] {
            assert!(trusted.contains(ip(yes)), "{yes}");
        }
        for no in [
            "11.0.0.1",
            "127.0.0.2",
            "::2",
            "2001:db9::1",
            "::ffff:127.0.0.2",
        ] {
            assert!(!trusted.contains(ip(no)), "{no}");
        }
    }

    #[test]
    fn nothing_is_trusted_by_default() {
        let trusted = TrustedProxies::default();
        assert!(trusted.is_empty());
        assert!(!trusted.contains(ip("127.0.0.1")));
    }

    #[test]
    fn mapped_entries_mean_their_ipv4_address_and_host_bits_are_cleared() {
        let net = TrustedProxies::parse_entry("::ffff:192.168.0.0/112").unwrap();
        assert_eq!(net.to_string(), "192.168.0.0/16");
        let net = TrustedProxies::parse_entry("10.1.2.3/8").unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_entries_say_what_to_write() {
        for wrong in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0/8",
            "::1/129",
            "10.0.0.1:80",
            "10.0.0.0/",
            "*",
        ] {
            let error = TrustedProxies::parse_entry(wrong).unwrap_err();
            assert!(error.contains("not an IP address or network"), "{error}");
        }
        let many = vec!["10.0.0.1"; MAX_TRUSTED_PROXIES + 1];
        assert!(TrustedProxies::parse(many).is_err());
    }
}

//! Outbound-host lists as WAGI (`allowed_hosts = ["https://api.example.com"]`)
//! and Spin (`allowed_outbound_hosts = ["https://*.example.com:8443"]`,
//! `allowed_http_hosts`) write them, turned into wasm-cgi's `allowed_hosts`
//! entries (`HOST`, `HOST:PORT`, `*.DOMAIN`, `*`).

use crate::runtime::AllowedHosts;

/// The hosts `entries` allow; the error names the first entry that has no
/// equivalent.
pub fn allowed_hosts(entries: &[String]) -> Result<AllowedHosts, String> {
    let converted = entries
        .iter()
        .map(|entry| convert(entry))
        .collect::<Result<Vec<_>, _>>()?;
    AllowedHosts::parse(&converted)
}

fn convert(entry: &str) -> Result<String, String> {
    if entry == "insecure:allow-all" {
        return Ok("*".to_owned());
    }
    let (scheme, rest) = match entry.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, entry),
    };
    let authority = rest.split_once('/').map_or(
        rest,
        |(authority, path)| {
            if path.is_empty() { authority } else { "" }
        },
    );
    if authority.is_empty() {
        return Err(format!(
            "allowed host {entry:?} must be a scheme and host, e.g. \"https://api.example.com\""
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        Some(v6) => match v6.split_once(']') {
            Some((_, after)) => {
                let host = &authority[..authority.len() - after.len()];
                (host, after.strip_prefix(':'))
            }
            None => return Err(format!("allowed host {entry:?} is not a valid host")),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if port == Some("*") {
        if host == "*" {
            return Ok("*".to_owned());
        }
        return Err(format!(
            "allowed host {entry:?}: any port (`:*`) has no equivalent; name the port"
        ));
    }
    let port = match (port, scheme.as_deref()) {
        (Some(port), _) => Some(port.to_owned()),
        (None, Some("https")) => Some("443".to_owned()),
        (None, Some("http")) => Some("80".to_owned()),
        (None, None | Some("*")) => None,
        (None, Some(other)) => {
            return Err(format!(
                "allowed host {entry:?}: only http and https requests go out, not {other}"
            ));
        }
    };
    Ok(match (host, port) {
        ("*", None) => "*".to_owned(),
        ("*", Some(port)) => {
            return Err(format!(
                "allowed host {entry:?}: any host on port {port} has no equivalent; name the hosts"
            ));
        }
        (host, None) => host.to_owned(),
        (host, Some(port)) => format!("{host}:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wagi_and_spin_host_lists_convert() {
        for (entry, expected) in [
            ("https://api.example.com", "api.example.com:443"),
            ("http://api.example.com", "api.example.com:80"),
            ("http://localhost:3000", "localhost:3000"),
            ("https://api.example.com/", "api.example.com:443"),
            ("*://api.example.com", "api.example.com"),
            ("https://*.example.com", "*.example.com:443"),
            ("api.example.com", "api.example.com"),
            ("insecure:allow-all", "*"),
            ("*://*:*", "*"),
        ] {
            assert_eq!(convert(entry).as_deref(), Ok(expected), "{entry}");
        }
        for bad in [
            "https://example.com:*",
            "https://*",
            "ftp://example.com",
            "https://example.com/path",
        ] {
            assert!(convert(bad).is_err(), "{bad} was accepted");
        }
        let hosts = allowed_hosts(&["https://api.example.com".to_owned()]).unwrap();
        assert!(hosts.allows(&"https://api.example.com/x".parse().unwrap()));
        assert!(!hosts.allows(&"https://other.example.com/x".parse().unwrap()));
    }
}

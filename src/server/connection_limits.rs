//! Connection limits: how many connections may be open at once, in all and
//! per client address (IPv6 grouped by /64, since one host usually holds a
//! whole /64). A connection past either is closed as soon as it is
//! accepted. The per-client table only holds addresses with a connection
//! open, so it is never larger than the total limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::client_key::ClientKey;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` connections are open.
    Total,
    /// This client has `--max-connections-per-client` open.
    PerClient,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerClient => "max_connections_per_client",
        }
    }
}

/// The open connections, counted.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_total: usize,
    max_per_client: Option<usize>,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_client: HashMap<ClientKey, usize>,
}

/// One open connection; dropping it closes its count.
#[derive(Debug)]
pub struct Permit {
    limits: ConnectionLimits,
    client: ClientKey,
}

impl ConnectionLimits {
    /// At most `max_total` connections, and `max_per_client` per client.
    pub fn new(max_total: usize, max_per_client: Option<usize>) -> Self {
        Self {
            inner: Arc::new(Inner {
                max_total,
                max_per_client,
                open: Mutex::default(),
            }),
        }
    }

    /// Counts a new connection from `ip`, or says why it may not open.
    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        let client = ClientKey::of(ip);
        let mut open = self.lock();
        if open.total >= self.inner.max_total {
            return Err(Refusal::Total);
        }
        let mine = open.by_client.get(&client).copied().unwrap_or(0);
        if self.inner.max_per_client.is_some_and(|max| mine >= max) {
            return Err(Refusal::PerClient);
        }
        open.total += 1;
        *open.by_client.entry(client).or_default() += 1;
        Ok(Permit {
            limits: self.clone(),
            client,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.inner
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total -= 1;
        if let Some(count) = open.by_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// The default `--max-connections`: three quarters of the open-file limit
/// (each connection is a descriptor; modules, the cache and the log need
/// the rest), at least 64.
pub fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let files = if ok && limit.rlim_cur != libc::RLIM_INFINITY {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        65_536
    };
    (files / 4 * 3).max(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn both_limits_hold_and_permits_give_back_their_count() {
        let limits = ConnectionLimits::new(3, Some(2));
        let a1 = limits.admit(ip("10.0.0.1")).unwrap();
        let _a2 = limits.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::PerClient
        );
        let _b = limits.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _c = limits.admit(ip("10.0.0.3")).unwrap();
        assert_eq!(limits.lock().by_client.len(), 3);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let limits = ConnectionLimits::new(10, Some(1));
        let _one = limits.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            Refusal::PerClient,
            "the same /64"
        );
        let _other = limits.admit(ip("2001:db8:1:3::1")).unwrap();
    }

    #[test]
    fn the_default_fits_the_descriptor_limit() {
        assert!(default_max_connections() >= 64);
    }
}

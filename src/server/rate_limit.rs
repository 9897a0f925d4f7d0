//! Per-client rate limits (`rate`, `burst` in `[limits]`, a route's or an
//! interpreter's): one token bucket per scope and client, taken from in the
//! dispatcher before a module starts or an instance slot is taken; a
//! client over its rate gets 429 with `Retry-After`.
//!
//! A scope is what the limits belong to: a route (by its path), the
//! interpreter of a scripts-folder script, or the modules folder under
//! `/cgi-bin/wasm-run.cgi/`. A client is its address, an IPv6 one by its
//! /64 (what one subscriber is usually given). The buckets live in a
//! [`BucketTable`] of fixed size.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;

use tokio::time::Instant;

use super::bucket_table::{BucketTable, Key, Refill};
use super::cgi_bin::{CGI_PREFIX, SCRIPTS_PREFIX};
use super::client_address::ClientAddress;
use super::client_key::ClientKey;
use super::endpoint::Endpoint;
use super::error::HttpError;
use super::state::AppState;
use crate::limits::Limits;

/// Buckets kept by default: 16384 slots of 48 bytes, under 1 MiB.
pub const DEFAULT_TABLE_SIZE: usize = 16 * 1024;

/// The rate limiter: the bucket table and how requests map onto it.
pub struct RateLimiter {
    table: BucketTable,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_TABLE_SIZE)
    }
}

impl RateLimiter {
    /// A limiter keeping at most `entries` buckets.
    pub fn new(entries: usize) -> Self {
        Self {
            table: BucketTable::new(entries, Instant::now()),
        }
    }

    /// Takes a token for `client` in `scope` under `limits` at `now`: `Ok`
    /// when it has one (or the limits set no rate), else `Err` with the
    /// whole seconds until it will (at least 1), for `Retry-After`.
    pub fn check(
        &self,
        scope: &str,
        client: IpAddr,
        limits: &Limits,
        now: Instant,
    ) -> Result<(), u64> {
        let Some((rate, burst)) = limits.rate_limit() else {
            return Ok(());
        };
        let refill = Refill {
            interval: rate.interval(),
            burst,
        };
        let key = Key {
            scope: scope_hash(scope),
            client: ClientKey::of(client),
        };
        self.table
            .take(key, refill, now)
            .map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Buckets held now.
    pub fn entries(&self) -> usize {
        self.table.len()
    }

    /// The most buckets it holds.
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Buckets replaced before they were full again.
    pub fn evictions(&self) -> u64 {
        self.table.evictions()
    }
}

/// Takes a token for the request's client from `endpoint`'s bucket, under
/// its limits: 429 (counted by scope) when it has none left. `charged`
/// holds the scopes this request (before an internal redirect) already
/// paid in, which cost nothing again.
pub fn admit(
    state: &AppState,
    endpoint: &Endpoint<'_>,
    client: &ClientAddress,
    charged: &mut Vec<String>,
) -> Result<(), HttpError> {
    let limits = endpoint.limits(state);
    if limits.rate.is_none() {
        return Ok(());
    }
    let scope = scope(endpoint);
    if charged.contains(&scope) {
        return Ok(());
    }
    state
        .rate_limiter
        .check(&scope, client.ip, limits, Instant::now())
        .map_err(|retry_after| {
            state.metrics.rate_limited(&scope);
            HttpError::RateLimited { retry_after }
        })?;
    charged.push(scope);
    Ok(())
}

/// The scope of `endpoint`'s limits, which also labels its metrics: the
/// route's path, `/cgi-bin/*.EXT` for a scripts-folder script, or
/// `/cgi-bin/wasm-run.cgi/...` for the modules folder.
pub fn scope(endpoint: &Endpoint<'_>) -> String {
    match (endpoint.route, &endpoint.script) {
        (Some(route), _) => route.config.path.to_string(),
        (None, Some(script)) => {
            format!("{SCRIPTS_PREFIX}/*{}", script.interpreter.config.extension)
        }
        (None, None) => format!("{CGI_PREFIX}/..."),
    }
}

/// A scope's part of the key (the table hashes the whole key again with
/// a key of its own).
fn scope_hash(scope: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    scope.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::limits::LimitOverrides;

    fn limits_of(toml: &str) -> Limits {
        toml::from_str::<LimitOverrides>(toml)
            .unwrap()
            .apply(Limits::default())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_burst_the_client_waits_whole_seconds() {
        let limiter = RateLimiter::new(64);
        let limits = limits_of("rate = \"10/s\"\nburst = 2");
        let client = ip("192.0.2.1");
        let now = Instant::now();
        assert_eq!(limiter.check("/a", client, &limits, now), Ok(()));
        assert_eq!(limiter.check("/a", client, &limits, now), Ok(()));
        assert_eq!(
            limiter.check("/a", client, &limits, now),
            Err(1),
            "100 ms away, said as 1 s"
        );
        assert_eq!(
            limiter.check("/b", client, &limits, now),
            Ok(()),
            "per scope"
        );
        assert_eq!(limiter.check("/a", ip("192.0.2.2"), &limits, now), Ok(()));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(
            limiter.check("/a", client, &limits, Instant::now()),
            Ok(()),
            "refilled"
        );
        let hourly = limits_of("rate = \"10/h\"");
        assert_eq!(limiter.check("/h", client, &hourly, Instant::now()), Ok(()));
        assert_eq!(
            limiter.check("/h", client, &hourly, Instant::now()),
            Err(360)
        );
    }

    #[test]
    fn no_rate_never_refuses_and_keeps_no_bucket() {
        let limiter = RateLimiter::new(8);
        let none = Limits::default();
        for _ in 0..1000 {
            assert_eq!(
                limiter.check("/a", ip("192.0.2.1"), &none, Instant::now()),
                Ok(())
            );
        }
        assert_eq!(limiter.entries(), 0);
    }
}

//! A fixed-size table of token buckets, one per key, for the per-client
//! rate limits. The memory is allocated once: a flood of distinct keys
//! replaces entries, it never grows the table.
//!
//! Each bucket is kept as GCRA does (the generic cell rate algorithm, the
//! token bucket written as one time): `tat`, the moment the bucket will be
//! full again. A request costs one token, which comes back after
//! `interval`; it is allowed while the bucket would not need to be fuller
//! than `burst` tokens, i.e. while `max(tat, now) + interval - now <=
//! burst × interval`. A refused request costs nothing. A bucket whose `tat`
//! has passed is full, the same as no bucket at all.
//!
//! The table is set-associative: a keyed hash (random per process, so a
//! client can't choose which set its addresses land in) picks a set of
//! [`WAYS`] slots, each set behind its own lock. A key not in its set takes
//! an empty slot, else one whose bucket is full again (no information
//! lost), else the least recently seen (an eviction). What a client with
//! many addresses can do: take a full burst from each of them (no
//! per-address limit can stop that), and by filling sets with active keys
//! evict other clients' buckets, which only gives those clients a fresh
//! full bucket: an eviction makes a limit more lenient, never stricter, so
//! a flood can't get an innocent client refused.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::client_key::ClientKey;

use tokio::time::Instant;

/// Slots per set: how many keys that hash alike are kept side by side.
pub const WAYS: usize = 8;

/// What a bucket is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The scope (route) the bucket belongs to.
    pub scope: u64,
    /// The client (an address, or an IPv6 /64).
    pub client: ClientKey,
}

/// How a bucket fills and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    /// The time one token takes to come back.
    pub interval: Duration,
    /// Tokens a full bucket holds (at least 1).
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: Option<Key>,
    /// Nanoseconds after the table's start at which the bucket is full.
    tat: u64,
    /// Nanoseconds after the table's start it was last asked about.
    seen: u64,
}

/// The buckets.
pub struct BucketTable {
    sets: Box<[Mutex<[Slot; WAYS]>]>,
    hasher: RandomState,
    start: Instant,
    used: AtomicUsize,
    evictions: AtomicU64,
}

impl BucketTable {
    /// A table of `capacity` slots (rounded up to whole sets, at least
    /// one), with times counted from `start`.
    pub fn new(capacity: usize, start: Instant) -> Self {
        let sets = capacity.div_ceil(WAYS).max(1);
        Self {
            sets: (0..sets)
                .map(|_| Mutex::new([Slot::default(); WAYS]))
                .collect(),
            hasher: RandomState::new(),
            start,
            used: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// How many buckets it can hold.
    pub fn capacity(&self) -> usize {
        self.sets.len() * WAYS
    }

    /// How many slots hold a bucket (never more than the capacity).
    pub fn len(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Buckets replaced before they were full again.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Takes a token from `key`'s bucket at `now`: `Ok`, or `Err` with how
    /// long until one is there.
    pub fn take(&self, key: Key, refill: Refill, now: Instant) -> Result<(), Duration> {
        let now =
            u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        let interval = u64::try_from(refill.interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let window = interval.saturating_mul(u64::from(refill.burst.max(1)));
        let index = (self.hasher.hash_one(key) % self.sets.len() as u64) as usize;
        let mut set = self.sets[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = match set.iter().position(|slot| slot.key == Some(key)) {
            Some(found) => &mut set[found],
            None => {
                let at = self.victim_in(&set, now);
                let slot = &mut set[at];
                *slot = Slot {
                    key: Some(key),
                    tat: now,
                    seen: now,
                };
                slot
            }
        };
        slot.seen = now;
        let tat = slot.tat.max(now).saturating_add(interval);
        let needed = tat - now;
        if needed > window {
            return Err(Duration::from_nanos(needed - window));
        }
        slot.tat = tat;
        Ok(())
    }

    /// The slot a new key takes in `set`: an empty one, else the stalest
    /// whose bucket is full again, else the least recently seen (counted
    /// as an eviction).
    fn victim_in(&self, set: &[Slot; WAYS], now: u64) -> usize {
        if let Some(empty) = set.iter().position(|slot| slot.key.is_none()) {
            self.used.fetch_add(1, Ordering::Relaxed);
            return empty;
        }
        let full = set
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.tat <= now)
            .min_by_key(|(_, slot)| slot.seen);
        if let Some((at, _)) = full {
            return at;
        }
        self.evictions.fetch_add(1, Ordering::Relaxed);
        set.iter()
            .enumerate()
            .min_by_key(|(_, slot)| slot.seen)
            .map_or(0, |(at, _)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: u64) -> Key {
        Key {
            scope: 1,
            client: ClientKey::V6(client),
        }
    }

    fn refill(interval_ms: u64, burst: u32) -> Refill {
        Refill {
            interval: Duration::from_millis(interval_ms),
            burst,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_is_allowed_then_one_token_per_interval() {
        let start = Instant::now();
        let table = BucketTable::new(64, start);
        let every_100ms = refill(100, 3);
        for _ in 0..3 {
            assert_eq!(table.take(key(1), every_100ms, start), Ok(()));
        }
        assert_eq!(table.take(key(1), every_100ms, start), Err(ms(100)));
        assert_eq!(
            table.take(key(1), every_100ms, start + ms(40)),
            Err(ms(60)),
            "refused requests cost nothing"
        );
        assert_eq!(table.take(key(1), every_100ms, start + ms(100)), Ok(()));
        assert_eq!(
            table.take(key(1), every_100ms, start + ms(100)),
            Err(ms(100))
        );
        // Idle long enough, the bucket is full again, and no fuller.
        let later = start + ms(10_000);
        for _ in 0..3 {
            assert_eq!(table.take(key(1), every_100ms, later), Ok(()));
        }
        assert!(table.take(key(1), every_100ms, later).is_err());
    }

    #[test]
    fn keys_have_buckets_of_their_own() {
        let start = Instant::now();
        let table = BucketTable::new(64, start);
        let one = refill(1000, 1);
        assert!(table.take(key(1), one, start).is_ok());
        assert!(table.take(key(1), one, start).is_err());
        assert!(table.take(key(2), one, start).is_ok());
        let other_scope = Key { scope: 2, ..key(1) };
        assert!(table.take(other_scope, one, start).is_ok());
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn a_flood_of_keys_never_grows_the_table() {
        let start = Instant::now();
        let table = BucketTable::new(100, start);
        assert_eq!(table.capacity(), 104, "whole sets");
        let slow = refill(60_000, 2);
        for client in 0..100_000 {
            let _ = table.take(key(client), slow, start);
            assert!(table.len() <= table.capacity());
        }
        assert_eq!(table.len(), table.capacity());
        assert!(table.evictions() > 90_000, "{}", table.evictions());
    }

    #[test]
    fn full_buckets_are_replaced_before_any_is_evicted() {
        let start = Instant::now();
        // One set: every key lands in it.
        let table = BucketTable::new(WAYS, start);
        let fast = refill(10, 1);
        for client in 0..WAYS as u64 {
            table.take(key(client), fast, start).unwrap();
        }
        // 10 ms on, every bucket is full again: new keys cost no eviction.
        for client in 100..100 + WAYS as u64 {
            table.take(key(client), fast, start + ms(20)).unwrap();
        }
        assert_eq!(table.evictions(), 0);
        // Now all are drained: the next new key evicts the least recently
        // seen, which then starts over with a full bucket.
        table.take(key(100), fast, start + ms(25)).unwrap_err();
        table.take(key(999), fast, start + ms(26)).unwrap();
        assert_eq!(table.evictions(), 1);
        assert!(
            table.take(key(100), fast, start + ms(27)).is_err(),
            "kept: seen last"
        );
        assert_eq!(table.len(), WAYS);
    }

    #[test]
    fn extreme_settings_saturate_instead_of_overflowing() {
        let start = Instant::now();
        let table = BucketTable::new(1, start);
        let huge = Refill {
            interval: Duration::MAX,
            burst: u32::MAX,
        };
        assert!(table.take(key(1), huge, start).is_ok());
        let zero = Refill {
            interval: Duration::ZERO,
            burst: 0,
        };
        assert!(table.take(key(2), zero, start).is_ok());
        assert!(table.take(key(2), zero, start).is_err());
        // Before the start: counted as the start.
        let early = BucketTable::new(1, start + ms(1000));
        assert!(early.take(key(1), refill(1, 1), start).is_ok());
    }
}

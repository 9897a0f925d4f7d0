//! Resource limits for running a module: what each one bounds, its default,
//! and how sizes (`512KiB`, `1MiB`) and durations (`500ms`, `2s`) are written.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::rate::{Rate, RateSetting};
use crate::runtime::RunLimits;

/// A size in bytes, written `512KiB`, `1MiB`, `2GiB`, `1MB` or plain bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_size::parse_size(text.trim())
            .map(ByteSize)
            .map_err(|e| {
                format!("invalid size {text:?} ({e}); write e.g. 512KiB, 16MiB or 1048576")
            })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Bytes(bytes) => Ok(ByteSize(bytes)),
            Written::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Deserializes an optional duration written as in [`parse_duration`].
fn deserialize_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Deserializes an optional count that must be at least 1.
fn deserialize_positive<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    match <u32 as serde::Deserialize>::deserialize(deserializer)? {
        0 => Err(serde::de::Error::custom(
            "must be at least 1 (0 would refuse every request)",
        )),
        n => Ok(Some(n)),
    }
}

/// Parses a duration written `500ms`, `2s`, `1m` or `1m 30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}); write e.g. 500ms, 2s or 1m"))
}

/// The limits one request runs under: those of its instance
/// ([`Limits::run`]) and those of the server around it (body size,
/// admission). Every route starts from the server's defaults and may
/// override any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from instantiation to the module's exit. Past it the
    /// instance is stopped and the client gets 504.
    pub timeout: Duration,
    /// Linear memory one instance may grow to. A module that asks for more
    /// sees `memory.grow` fail, and usually traps (500).
    pub max_memory: ByteSize,
    /// Instruction budget (Wasmtime fuel units). `None`: not metered, which
    /// keeps the faster epoch-only code.
    pub fuel: Option<u64>,
    /// Largest request body accepted; larger bodies get 413 before the module
    /// starts.
    pub max_body: ByteSize,
    /// Largest response body a module may write; past it the response is
    /// aborted and the instance stopped.
    pub max_output: ByteSize,
    /// Instances running at once. As many requests again may wait for a slot,
    /// each at most `queue_timeout`, before getting 503.
    pub max_concurrency: usize,
    /// How long a request waits for a free instance slot before getting 503.
    pub queue_timeout: Duration,
    /// Requests per client address (IPv6 by /64) before 429. `None`: no
    /// per-client limit.
    pub rate: Option<Rate>,
    /// Requests a client may make at once before `rate` applies. `None`:
    /// the rate's [default](Rate::default_burst).
    pub burst: Option<u32>,
}

/// The machine's cores (as the cgroup allows), read once: finding out reads
/// several files under /proc and /sys.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

impl Limits {
    /// The limits that bound the instance itself.
    pub fn run(&self) -> RunLimits {
        RunLimits {
            timeout: self.timeout,
            max_memory: self.max_memory.0,
            fuel: self.fuel,
            max_output: self.max_output.0,
        }
    }

    /// The per-client rate and its burst, if a rate is set.
    pub fn rate_limit(&self) -> Option<(Rate, u32)> {
        self.rate
            .map(|rate| (rate, self.burst.unwrap_or_else(|| rate.default_burst())))
    }
}

impl Default for Limits {
    fn default() -> Self {
        let cores = cores();
        let run = RunLimits::default();
        Self {
            timeout: run.timeout,
            max_memory: ByteSize(run.max_memory),
            fuel: run.fuel,
            max_body: ByteSize(16 << 20),
            max_output: ByteSize(run.max_output),
            max_concurrency: 2 * cores * 32,
            queue_timeout: Duration::from_secs(1),
            rate: None,
            burst: None,
        }
    }
}

/// Limits to change, each `None` to keep the one below it. The same struct
/// is the `--timeout`… flags of `serve` and `run`, and the `[limits]` tables
/// of the config file, so both spell every limit the same way.
#[derive(clap::Args, serde::Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "Limits")]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Wall-clock time per run, from instantiation to exit (504 when
    /// serving) [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub timeout: Option<Duration>,
    /// Linear memory per instance [default: 128MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<ByteSize>,
    /// Instruction budget in fuel units; off unless given (metering costs speed)
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Largest request body (413 above it) [default: 16MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_body: Option<ByteSize>,
    /// Largest response body; past it the response is cut [default: 64MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_output: Option<ByteSize>,
    /// Instances running at once; as many more may queue [default: 64 × cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(default, deserialize_with = "deserialize_positive")]
    pub max_concurrency: Option<u32>,
    /// Longest wait in the queue before 503 [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub queue_timeout: Option<Duration>,
    /// Requests per client address, `N/s`, `N/m` or `N/h` (429 past it);
    /// `off` lifts one set below [default: off]
    #[arg(long, value_name = "N/UNIT")]
    pub rate: Option<RateSetting>,
    /// Requests a client may make at once before the rate applies
    /// [default: the rate per second, rounded up]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(default, deserialize_with = "deserialize_positive")]
    pub burst: Option<u32>,
}

impl LimitOverrides {
    /// `base` with every set limit replaced.
    pub fn apply(&self, mut base: Limits) -> Limits {
        if let Some(timeout) = self.timeout {
            base.timeout = timeout;
        }
        if let Some(max_memory) = self.max_memory {
            base.max_memory = max_memory;
        }
        if let Some(fuel) = self.fuel {
            base.fuel = Some(fuel);
        }
        if let Some(max_body) = self.max_body {
            base.max_body = max_body;
        }
        if let Some(max_output) = self.max_output {
            base.max_output = max_output;
        }
        if let Some(max_concurrency) = self.max_concurrency {
            base.max_concurrency = max_concurrency as usize;
        }
        if let Some(queue_timeout) = self.queue_timeout {
            base.queue_timeout = queue_timeout;
        }
        if let Some(rate) = self.rate {
            base.rate = rate.rate();
        }
        if let Some(burst) = self.burst {
            base.burst = Some(burst);
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_units_and_plain_bytes() {
        assert_eq!("512KiB".parse(), Ok(ByteSize(512 * 1024)));
        assert_eq!("1MiB".parse(), Ok(ByteSize(1 << 20)));
        assert_eq!("2GiB".parse(), Ok(ByteSize(2 << 30)));
        assert_eq!("1MB".parse(), Ok(ByteSize(1_000_000)));
        assert_eq!("4096".parse(), Ok(ByteSize(4096)));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("-1MiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn sizes_display_in_the_largest_exact_unit() {
        assert_eq!(ByteSize(128 << 20).to_string(), "128MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
        assert_eq!(ByteSize(3 << 10).to_string(), "3KiB");
    }

    #[test]
    fn overrides_read_from_toml_with_sizes_as_text_or_bytes() {
        let overrides: LimitOverrides =
            toml::from_str("timeout = \"5s\"\nmax_memory = \"64MiB\"\nmax_body = 1024\nfuel = 10")
                .unwrap();
        let limits = overrides.apply(Limits::default());
        assert_eq!(limits.timeout, Duration::from_secs(5));
        assert_eq!(limits.max_memory, ByteSize(64 << 20));
        assert_eq!(limits.max_body, ByteSize(1024));
        assert_eq!(limits.fuel, Some(10));
        assert!(toml::from_str::<LimitOverrides>("timeout = \"soon\"").is_err());
        assert!(toml::from_str::<LimitOverrides>("max_memroy = \"1MiB\"").is_err());
        // Regression: 0 slots was accepted and refused every request.
        let error = toml::from_str::<LimitOverrides>("max_concurrency = 0").unwrap_err();
        assert!(error.to_string().contains("at least 1"), "{error}");
        assert_eq!(
            toml::from_str::<LimitOverrides>("max_concurrency = 3")
                .unwrap()
                .max_concurrency,
            Some(3)
        );
    }

    #[test]
    fn rate_and_burst_read_from_toml_and_layer() {
        let server: LimitOverrides = toml::from_str("rate = \"50/s\"").unwrap();
        let limits = server.apply(Limits::default());
        let (rate, burst) = limits.rate_limit().unwrap();
        assert_eq!((rate.to_string(), burst), ("50/s".to_owned(), 50));
        let route: LimitOverrides = toml::from_str("rate = \"10/m\"\nburst = 3").unwrap();
        let (rate, burst) = route.apply(limits.clone()).rate_limit().unwrap();
        assert_eq!((rate.to_string(), burst), ("10/m".to_owned(), 3));
        let off: LimitOverrides = toml::from_str("rate = \"off\"").unwrap();
        assert_eq!(off.apply(limits).rate_limit(), None);
        assert_eq!(Limits::default().rate_limit(), None, "off by default");
        for wrong in ["rate = \"50\"", "rate = 50", "burst = 0", "burst = -1"] {
            assert!(toml::from_str::<LimitOverrides>(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
    }
}

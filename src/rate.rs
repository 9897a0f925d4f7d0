//! Request rates as written in limits: `50/s`, `600/m`, `10/h`, or `off`
//! (the `rate` key and `--rate` flag), and the burst a rate allows by
//! default.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The largest count a rate may give: past it a per-client limit means
/// nothing (and the arithmetic on intervals stays exact).
const MAX_COUNT: u32 = 1_000_000;

/// How many requests one client may make per second, minute or hour,
/// written `50/s`, `600/m` or `10/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per `per`, at least 1.
    count: u32,
    /// The time unit.
    per: Per,
}

/// The unit of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Per {
    Second,
    Minute,
    Hour,
}

impl Per {
    fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3600,
        })
    }

    fn letter(self) -> char {
        match self {
            Per::Second => 's',
            Per::Minute => 'm',
            Per::Hour => 'h',
        }
    }
}

impl Rate {
    /// The time one request's token takes to come back: the unit divided
    /// by the count (`50/s`: 20 ms).
    pub fn interval(&self) -> Duration {
        self.per.duration() / self.count
    }

    /// The burst when none is given: the rate per second, rounded up, and
    /// at least 1 (`50/s`: 50; `600/m`: 10; `10/h`: 1).
    pub fn default_burst(&self) -> u32 {
        let per_secs = self.per.duration().as_secs() as u32;
        self.count.div_ceil(per_secs).max(1)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || {
            format!(
                "invalid rate {text:?}; write COUNT/UNIT with a unit of s, m or h, e.g. 50/s, 600/m or 10/h"
            )
        };
        let (count, unit) = text.split_once('/').ok_or_else(wrong)?;
        // Digits only: no sign, no spaces, no fractions.
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(wrong());
        }
        let per = match unit {
            "s" => Per::Second,
            "m" => Per::Minute,
            "h" => Per::Hour,
            _ => return Err(wrong()),
        };
        match count.parse::<u32>() {
            Ok(0) => Err(format!(
                "invalid rate {text:?}: the count must be at least 1 (write \"off\" for no limit)"
            )),
            Ok(count) if count <= MAX_COUNT => Ok(Rate { count, per }),
            _ => Err(format!(
                "invalid rate {text:?}: the count may be at most {MAX_COUNT}"
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per.letter())
    }
}

/// A `rate` as written in a limits table or flag: a [`Rate`], or `off` to
/// lift one set below (a route free of the server's rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateSetting {
    /// `off`: no per-client rate.
    Off,
    /// A rate per client.
    Limit(Rate),
}

impl RateSetting {
    /// The rate it sets, `None` for `off`.
    pub fn rate(self) -> Option<Rate> {
        match self {
            RateSetting::Off => None,
            RateSetting::Limit(rate) => Some(rate),
        }
    }
}

impl FromStr for RateSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "off" => Ok(RateSetting::Off),
            _ => text.parse().map(RateSetting::Limit),
        }
    }
}

impl<'de> serde::Deserialize<'de> for RateSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_a_count_per_second_minute_or_hour() {
        let rate: Rate = "50/s".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_millis(20));
        assert_eq!(rate.default_burst(), 50);
        assert_eq!(rate.to_string(), "50/s");
        let rate: Rate = "600/m".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_millis(100));
        assert_eq!(rate.default_burst(), 10);
        let rate: Rate = "10/h".parse().unwrap();
        assert_eq!(rate.interval(), Duration::from_secs(360));
        assert_eq!(rate.default_burst(), 1, "at least 1");
        assert_eq!("61/m".parse::<Rate>().unwrap().default_burst(), 2);
    }

    #[test]
    fn rates_are_parsed_strictly() {
        for wrong in [
            "", "50", "/s", "50/", "50/sec", "50/d", "50 /s", "50/ s", " 50/s", "+5/s", "-5/s",
            "1.5/s", "5/S", "0x10/s", "5/s/s", "off/s",
        ] {
            assert!(wrong.parse::<Rate>().is_err(), "{wrong:?} accepted");
        }
        let zero = "0/s".parse::<Rate>().unwrap_err();
        assert!(zero.contains("at least 1"), "{zero}");
        assert!("1000001/s".parse::<Rate>().is_err());
        assert!("99999999999999999999/s".parse::<Rate>().is_err());
        assert!("1000000/s".parse::<Rate>().is_ok());
    }

    #[test]
    fn off_lifts_a_rate() {
        assert_eq!("off".parse::<RateSetting>(), Ok(RateSetting::Off));
        assert_eq!(RateSetting::Off.rate(), None);
        let setting: RateSetting = "5/m".parse().unwrap();
        assert_eq!(
            setting.rate().map(|r| r.to_string()).as_deref(),
            Some("5/m")
        );
        assert!("Off".parse::<RateSetting>().is_err());
    }
}

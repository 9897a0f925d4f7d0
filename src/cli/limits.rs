//! The limit flags shared by `serve` and `run`; each one overrides the
//! matching field of [`Limits`].

use std::time::Duration;

use crate::limits::{ByteSize, Limits, parse_duration};

/// Per-request limits; unset flags keep the defaults.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Limits")]
pub struct LimitFlags {
    /// Wall-clock time per run, from instantiation to exit (504 when
    /// serving) [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
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
    pub max_concurrency: Option<u32>,
    /// Longest wait in the queue before 503 [default: 1s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub queue_timeout: Option<Duration>,
}

impl LimitFlags {
    /// `base` with every given flag applied.
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
        base
    }
}

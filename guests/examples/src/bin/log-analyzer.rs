//! The log analyzer of the classic WASI tutorial: reads JSON-lines logs
//! (`timestamp`, `level`, `message`, optional `service` and `duration_ms`)
//! and writes a JSON report of counts, errors and slow requests.
//!
//! `log-analyzer [INPUT [OUTPUT]]`: INPUT defaults to `/data/logs.json`;
//! the report goes to stdout, and also to OUTPUT when one is given. Run as a
//! CGI program (`GATEWAY_INTERFACE` set) it prints a `Content-Type` header
//! first.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};

use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct LogEntry {
    timestamp: String,
    level: String,
    message: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    duration_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct AnalysisReport {
    total_entries: usize,
    skipped_lines: usize,
    by_level: BTreeMap<String, usize>,
    by_service: BTreeMap<String, usize>,
    error_messages: Vec<String>,
    slow_requests: Vec<SlowRequest>,
    avg_duration_ms: f64,
    p99_duration_ms: f64,
}

#[derive(Debug, Serialize)]
struct SlowRequest {
    timestamp: String,
    service: String,
    duration_ms: f64,
    message: String,
}

/// Requests slower than this are listed (the ten slowest).
const SLOW_MS: f64 = 1000.0;

fn analyze(entries: &[LogEntry], skipped_lines: usize) -> AnalysisReport {
    let mut by_level = BTreeMap::new();
    let mut by_service = BTreeMap::new();
    let mut error_messages = Vec::new();
    let mut durations = Vec::new();
    let mut slow_requests = Vec::new();

    for entry in entries {
        *by_level.entry(entry.level.clone()).or_default() += 1;
        if !entry.service.is_empty() {
            *by_service.entry(entry.service.clone()).or_default() += 1;
        }
        if entry.level == "ERROR" {
            error_messages.push(format!(
                "[{}] {}: {}",
                entry.timestamp, entry.service, entry.message
            ));
        }
        if let Some(duration) = entry.duration_ms.filter(|d| d.is_finite()) {
            durations.push(duration);
            if duration > SLOW_MS {
                slow_requests.push(SlowRequest {
                    timestamp: entry.timestamp.clone(),
                    service: entry.service.clone(),
                    duration_ms: duration,
                    message: entry.message.clone(),
                });
            }
        }
    }

    durations.sort_by(f64::total_cmp);
    let avg_duration_ms = if durations.is_empty() {
        0.0
    } else {
        durations.iter().sum::<f64>() / durations.len() as f64
    };
    let p99_duration_ms = match durations.len() {
        0 => 0.0,
        n => durations[((n as f64 * 0.99) as usize).min(n - 1)],
    };
    slow_requests.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
    slow_requests.truncate(10);

    AnalysisReport {
        total_entries: entries.len(),
        skipped_lines,
        by_level,
        by_service,
        error_messages,
        slow_requests,
        avg_duration_ms,
        p99_duration_ms,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = args.get(1).map_or("/data/logs.json", String::as_str);
    let output = args.get(2);

    let file = match fs::File::open(input) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("log-analyzer: cannot open {input}: {error}");
            std::process::exit(1);
        }
    };
    let mut entries = Vec::new();
    let mut skipped = 0;
    for line in BufReader::new(file).lines() {
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                eprintln!("log-analyzer: cannot read {input}: {error}");
                std::process::exit(1);
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LogEntry>(&line) {
            Ok(entry) => entries.push(entry),
            Err(error) => {
                skipped += 1;
                eprintln!("log-analyzer: skipping a malformed line: {error}");
            }
        }
    }

    let report =
        serde_json::to_string_pretty(&analyze(&entries, skipped)).expect("a report serializes");
    if let Some(output) = output {
        if let Err(error) = fs::write(output, &report) {
            eprintln!("log-analyzer: cannot write {output}: {error}");
            std::process::exit(1);
        }
    }
    if std::env::var_os("GATEWAY_INTERFACE").is_some() {
        print!("Content-Type: application/json\r\n\r\n");
    }
    println!("{report}");
}

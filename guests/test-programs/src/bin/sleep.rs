//! Sleeps argv 1 milliseconds (default 1000) before printing `awake`, to
//! test timeouts and the concurrency limit.

use std::time::Duration;

fn main() {
    let millis: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    std::thread::sleep(Duration::from_millis(millis));
    println!("awake");
}

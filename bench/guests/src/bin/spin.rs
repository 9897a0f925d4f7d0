//! The misbehaving module: spins forever without a host call. The server
//! must stop it at its --timeout while everyone else keeps being served.
use std::hint::black_box;

fn main() {
    let mut x: u64 = 1;
    loop {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

//! The classic setup's sample: prints a greeting.

fn main() {
    println!("Hello Pinky!");
}

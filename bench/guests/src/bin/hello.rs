//! The hello workload: the classic image's module, byte for byte.
fn main() {
    println!("Hello Pinky!");
}

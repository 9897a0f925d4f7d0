//! A command with a second exported function, `greet`, for routes that
//! name an `entrypoint` other than `_start`.

fn main() {
    println!("main entry");
}

/// Called instead of `main` by a route with `entrypoint = "greet"`.
#[unsafe(no_mangle)]
pub extern "C" fn greet() {
    println!("greet entry");
}

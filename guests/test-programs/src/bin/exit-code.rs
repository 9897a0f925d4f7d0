//! Prints `before exit` (when argv 2 is `print`) and exits with the code in
//! argv 1, through `proc_exit`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code: i32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    if args.get(2).map(String::as_str) == Some("print") {
        println!("before exit");
    }
    eprintln!("exit-code: leaving with {code}");
    std::process::exit(code);
}

//! The POST echo workload: copies the request body (stdin) to the response (stdout).
fn main() {
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    std::io::copy(&mut stdin, &mut stdout).expect("copy stdin to stdout");
}

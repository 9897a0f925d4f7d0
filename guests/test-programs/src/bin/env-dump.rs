//! Prints its arguments and its whole environment, one `KEY=VALUE` per line,
//! so tests can check every CGI meta-variable and argv.

fn main() {
    for (i, arg) in std::env::args().enumerate() {
        println!("ARGV[{i}]={arg}");
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (key, value) in vars {
        println!("{key}={value}");
    }
}

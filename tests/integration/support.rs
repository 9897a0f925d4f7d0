//! The test harness: starts the real `wasm-cgi` binary on `127.0.0.1:0`
//! with a fresh modules folder of guest programs built from source, reads
//! the bound address from its stdout, and collects its log from stderr.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every guest test program, as (file name, built path).
pub const PROGRAMS: &[(&str, &str)] = &[
    ("cat.wasm", test_artifacts::CAT),
    ("entrypoints.wasm", test_artifacts::ENTRYPOINTS),
    ("env-dump.wasm", test_artifacts::ENV_DUMP),
    ("exit-code.wasm", test_artifacts::EXIT_CODE),
    ("fs.wasm", test_artifacts::FS),
    ("hostile.wasm", test_artifacts::HOSTILE),
    ("redirect-loop.wasm", test_artifacts::REDIRECT_LOOP),
    ("sleep.wasm", test_artifacts::SLEEP),
    ("slow-lines.wasm", test_artifacts::SLOW_LINES),
    ("trap.wasm", test_artifacts::TRAP),
    ("wc.wasm", test_artifacts::WC),
];

/// The same test programs built for `wasm32-wasip2`: `wasi:cli/command`
/// components, as (file name, built path). Each name is its preview 1
/// twin's with a `-p2` suffix, so both can sit in one folder.
pub const P2_PROGRAMS: &[(&str, &str)] = &[
    ("cat-p2.wasm", test_artifacts::P2_CAT),
    ("env-dump-p2.wasm", test_artifacts::P2_ENV_DUMP),
    ("exit-code-p2.wasm", test_artifacts::P2_EXIT_CODE),
    ("fs-p2.wasm", test_artifacts::P2_FS),
    ("hostile-p2.wasm", test_artifacts::P2_HOSTILE),
    ("redirect-loop-p2.wasm", test_artifacts::P2_REDIRECT_LOOP),
    ("sleep-p2.wasm", test_artifacts::P2_SLEEP),
    ("slow-lines-p2.wasm", test_artifacts::P2_SLOW_LINES),
    ("trap-p2.wasm", test_artifacts::P2_TRAP),
    ("wc-p2.wasm", test_artifacts::P2_WC),
];

/// The `wasi:http/proxy` test handler, as (file name, built path).
pub const HANDLER: (&str, &str) = ("handler.wasm", test_artifacts::HTTP_HANDLER);

/// Every test program: the preview 1 modules, their `-p2` command twins and
/// the wasi:http handler.
pub fn every_program() -> Vec<(&'static str, &'static str)> {
    let mut all = PROGRAMS.to_vec();
    all.extend_from_slice(P2_PROGRAMS);
    all.push(HANDLER);
    all
}

/// The file name the `-p2` twin of the preview 1 program `name` has in
/// [`P2_PROGRAMS`]: `cat.wasm` gives `cat-p2.wasm`.
pub fn p2_name(name: &str) -> String {
    let stem = name.strip_suffix(".wasm").expect("a .wasm name");
    format!("{stem}-p2.wasm")
}

/// The preview 1 program `name` and its `-p2` twin, to run one test over a
/// module and a command: `cat.wasm` gives `cat.wasm` and `cat-p2.wasm`.
pub fn twins(name: &str) -> [String; 2] {
    [name.to_owned(), p2_name(name)]
}

/// `config` as written, then with each quoted program name that has a `-p2`
/// twin replaced by the twin's: the same routes over modules, then over
/// commands. Serve it with [`Server::with_config_and`] and [`P2_PROGRAMS`].
pub fn config_twins(config: &str) -> [String; 2] {
    let commands = PROGRAMS
        .iter()
        .filter(|(name, _)| P2_PROGRAMS.iter().any(|(p2, _)| *p2 == p2_name(name)))
        .fold(config.to_owned(), |config, (name, _)| {
            config.replace(&format!("\"{name}\""), &format!("\"{}\"", p2_name(name)))
        });
    [config.to_owned(), commands]
}

/// How much later than its limit a breach may be answered.
pub const SLACK: Duration = Duration::from_millis(700);

/// A host environment variable the server has and no module may see.
pub const HOST_SECRET: (&str, &str) = ("WASM_CGI_TEST_HOST_SECRET", "host-secret-value");

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    /// The address it is bound to.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// The folder it serves from (deleted on drop).
    pub modules: tempfile::TempDir,
}

impl Server {
    /// A server with every test program, in the default mode, plus `args`.
    pub fn start(args: &[&str]) -> Server {
        let modules = tempfile::tempdir().unwrap();
        for (name, path) in PROGRAMS {
            std::fs::copy(path, modules.path().join(name)).unwrap();
        }
        Self::start_in(modules, args)
    }

    /// A server with every test program (see [`every_program`]), plus `args`.
    pub fn start_all(args: &[&str]) -> Server {
        Self::start_with(&every_program(), args)
    }

    /// A server for exactly `programs` (file name, built path), plus `args`.
    pub fn start_with(programs: &[(&str, &str)], args: &[&str]) -> Server {
        let modules = tempfile::tempdir().unwrap();
        for (name, path) in programs {
            std::fs::copy(path, modules.path().join(name)).unwrap();
        }
        Self::start_in(modules, args)
    }

    /// A server for the modules in `modules`, plus `args`.
    pub fn start_in(modules: tempfile::TempDir, args: &[&str]) -> Server {
        let cwd = modules.path().to_path_buf();
        let mut all = vec!["--modules", cwd.to_str().unwrap()];
        all.extend(args);
        Self::launch(&all, &[], &cwd, modules)
    }

    /// `wasm-cgi serve --listen 127.0.0.1:0 ARGS` in `cwd`, with `envs` set;
    /// `keep` is deleted when the server is dropped.
    pub fn launch(
        args: &[&str],
        envs: &[(&str, &str)],
        cwd: &Path,
        keep: tempfile::TempDir,
    ) -> Server {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend(args);
        let (child, addr, log) = spawn(&all, envs, cwd);
        Server {
            child,
            addr,
            log,
            modules: keep,
        }
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://ADDR/cgi-bin/wasm-run.cgi/path`.
    pub fn cgi(&self, path: &str) -> String {
        self.url(&format!("/cgi-bin/wasm-run.cgi/{path}"))
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle` (logs are written asynchronously).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until one line of the log holds every one of `needles`, and
    /// returns it; panics with the whole log if none does within 5 s.
    pub fn wait_for_line(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            let found = log
                .lines()
                .find(|line| needles.iter().all(|needle| line.contains(needle)));
            if let Some(line) = found {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line holds all of {needles:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `request` as raw bytes on a new connection and returns all the
    /// server sent back until it closed the connection.
    pub fn raw(&self, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }
}

impl Server {
    /// A server started with `--config FILE`, where FILE holds `config` and
    /// sits next to a `modules` folder of every test program, and a `data`
    /// folder holding `data.txt`.
    pub fn with_config(config: &str, args: &[&str]) -> Server {
        Self::with_config_and(config, &[], args)
    }

    /// As [`Server::with_config`], with `extra` programs (file name, built
    /// path) in the `modules` folder besides every test program.
    pub fn with_config_and(config: &str, extra: &[(&str, &str)], args: &[&str]) -> Server {
        let dir = config_dir_with(config, extra);
        let file = dir.path().join("wasm-cgi.toml");
        let mut all = vec!["--config", file.to_str().unwrap()];
        all.extend(args);
        let cwd = dir.path().to_path_buf();
        Self::launch(&all, &[], &cwd, dir)
    }

    /// Sends SIGTERM to the server.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `timeout` for the server to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The server's resident memory, in KiB, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The most resident memory the server has had, in KiB, from `/proc`.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Whether `/healthz` answers 200 within a second.
    pub async fn is_healthy(&self) -> bool {
        let request = client()
            .get(self.url("/healthz"))
            .timeout(Duration::from_secs(1))
            .send();
        matches!(request.await, Ok(response) if response.status() == 200)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wasm-cgi ARGS` in `cwd` with `envs` and waits for its `listening on` line.
fn spawn(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &Path,
) -> (Child, SocketAddr, Arc<Mutex<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasm-cgi"))
        .args(args)
        .current_dir(cwd)
        .env_remove("LISTEN")
        .env_remove("PORT")
        .env_remove("MODE")
        .env_remove("WASM_DIR")
        .env_remove("INSTALL_DIR")
        .env_remove("RUST_LOG")
        .env("WASMTIME_CACHE_DIR", shared_cache_dir())
        .env_remove("WASM_CGI_CONFIG")
        .env("NO_COLOR", "1")
        .env(HOST_SECRET.0, HOST_SECRET.1)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start wasm-cgi");

    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn({
        let log = log.clone();
        move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }
    });

    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let line = line.trim();
    let addr = line
        .strip_prefix("listening on http://")
        .or_else(|| line.strip_prefix("listening on https://"));
    let Some(addr) = addr else {
        let _ = child.kill();
        std::thread::sleep(Duration::from_millis(200));
        panic!(
            "unexpected first line {line:?}; log:\n{}",
            log.lock().unwrap()
        );
    };
    let addr = addr.parse().unwrap();
    // Later stdout lines (a second listener's) go to the log too.
    std::thread::spawn({
        let log = log.clone();
        move || {
            for line in stdout.lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    (child, addr, log)
}

/// A fresh folder with `wasm-cgi.toml` holding `config`, a `modules` folder
/// of every test program, and a `data` folder holding `data.txt`.
pub fn config_dir(config: &str) -> tempfile::TempDir {
    config_dir_with(config, &[])
}

/// As [`config_dir`], with `extra` programs (file name, built path) in the
/// `modules` folder besides every test program.
pub fn config_dir_with(config: &str, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    for (name, path) in PROGRAMS.iter().chain(extra) {
        std::fs::copy(path, modules.join(name)).unwrap();
    }
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("data/data.txt"), "granted data\n").unwrap();
    std::fs::write(dir.path().join("wasm-cgi.toml"), config).unwrap();
    dir
}

/// Runs `wasm-cgi ARGS` in `dir`, with none of the environment variables
/// that pick folders set: its exit code, stdout and stderr.
pub fn run_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wasm-cgi"))
        .args(args)
        .current_dir(dir)
        .env_remove("WASM_DIR")
        .env_remove("WASM_CGI_CONFIG")
        .env_remove("INSTALL_DIR")
        .env_remove("SCRIPTS_DIR")
        .env("WASMTIME_CACHE_DIR", shared_cache_dir())
        .output()
        .unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (
        output.status.code(),
        text(output.stdout),
        text(output.stderr),
    )
}

/// The compile cache every test server shares: inside the build's own
/// temporary folder, never the user's cache.
pub fn shared_cache_dir() -> String {
    concat!(env!("CARGO_TARGET_TMPDIR"), "/wasm-cgi-cache").to_owned()
}

/// An HTTP client that never pools connections between tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// As [`client`], with its connections made from the local address `ip`
/// (Linux routes all of 127.0.0.0/8 to the loopback interface, so
/// `127.0.0.2` and up are distinct clients of a server on 127.0.0.1).
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// `env-dump.wasm` output as a map of variables (`ARGV[i]` included).
pub fn parse_env(body: &str) -> HashMap<String, String> {
    body.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The `ARGV[i]` entries of an `env-dump.wasm` output, in order.
pub fn argv(env: &HashMap<String, String>) -> Vec<String> {
    (0..)
        .map_while(|i| env.get(&format!("ARGV[{i}]")).cloned())
        .collect()
}

/// The body of `GET url`.
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The status of `GET url`.
pub async fn get_status(url: &str) -> reqwest::StatusCode {
    client().get(url).send().await.unwrap().status()
}

/// `GET url` with `x-request-id: id`, to find the request in the log.
pub async fn get_with_id(url: &str, id: &str) -> reqwest::Response {
    client()
        .get(url)
        .header("x-request-id", id)
        .send()
        .await
        .unwrap()
}

/// `GET url`: its status, its body (empty if the body failed), and the time
/// the whole took.
pub async fn timed_get(url: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (status, body, started.elapsed())
}

/// The `x-request-id` the server answered `response` with.
pub fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The body of `POST url` with `body`.
pub async fn post_text(url: &str, body: impl Into<reqwest::Body>) -> String {
    client()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The status of `POST url` with `body`.
pub async fn post_status(url: &str, body: impl Into<reqwest::Body>) -> reqwest::StatusCode {
    client().post(url).body(body).send().await.unwrap().status()
}

/// Reads the rest of `response`'s body: the bytes received, and whether the
/// body ended normally (`false`: the connection reported an error, the
/// response was cut short).
pub async fn read_to_end(response: &mut reqwest::Response) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return (body, true),
            Err(_) => return (body, false),
        }
    }
}

/// `GET` of the folder URL `path`, whose program writes `first` at once
/// and `rest` only a second or more later: checks that the response
/// streams, causally rather than by the clock (the first chunk is `first`
/// and arrives while the program still runs: `/metrics` still counts its
/// instance in flight), and that it ends complete. How the body streams
/// (cut, fail, slow readers) is unit-tested in `runtime::guest_body`.
pub async fn assert_streams(server: &Server, path: &str, first: &[u8], rest: &[u8]) {
    let url = server.cgi(path);
    let mut response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let chunk = response.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(&chunk[..], first, "{url}");
    let metrics = get_text(&server.url("/metrics")).await;
    let in_flight = sample(&metrics, "wasm_cgi_instances_in_flight");
    assert!(
        in_flight.is_some_and(|n| n >= 1.0),
        "{url}: the first chunk came after the program ended ({in_flight:?} in flight)"
    );
    let (received, complete) = read_to_end(&mut response).await;
    assert!(complete, "{url}");
    assert_eq!(received, rest, "{url}");
}

/// Sends `count` GETs of `url` all at once; for each, its status, its
/// `retry-after` header and its body.
pub async fn get_at_once(url: &str, count: usize) -> Vec<(u16, Option<String>, String)> {
    let requests = (0..count).map(|_| async {
        let response = client().get(url).send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        (status, retry_after, response.text().await.unwrap())
    });
    futures::future::join_all(requests).await
}

/// Checks that of `answers` (from [`get_at_once`]) exactly `served` got a
/// 200 and every other one a 503 with `retry-after: 1`.
pub fn assert_served_then_busy(answers: &[(u16, Option<String>, String)], served: usize) {
    let statuses: Vec<u16> = answers.iter().map(|answer| answer.0).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        served,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        answers.len() - served,
        "{statuses:?}"
    );
    for (status, retry_after, _) in answers {
        if *status == 503 {
            assert_eq!(retry_after.as_deref(), Some("1"));
        }
    }
}

/// The value in a Prometheus text exposition of the sample whose name and
/// labels are exactly `sample`.
pub fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Checks that each sample of `expected` (name with labels, value) has
/// that value in the Prometheus text `text`.
pub fn assert_samples(text: &str, expected: &[(&str, f64)]) {
    for (name, value) in expected {
        assert_eq!(sample(text, name), Some(*value), "{name}:\n{text}");
    }
}

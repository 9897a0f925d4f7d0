//! `serve` flags that WAGI users bring: `-e/--env NAME=VALUE` and
//! `--env-file FILE` (variables every guest gets; `--env` wins over the
//! file's) and `--default-host HOST[:PORT]` (WAGI's docs; `--hostname` in
//! its code), the host a request without a `Host` header is taken to have.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use http::HeaderValue;

/// Variables for every guest, and the default host.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GuestEnvFlags {
    /// Set NAME=VALUE in every guest's environment (quotes around VALUE are
    /// removed); repeatable, several per flag. Wins over --env-file and
    /// route env; a CGI meta-variable of the same name still wins
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", num_args = 1..)]
    pub env: Vec<String>,
    /// Read NAME=VALUE lines (# comments, optional quotes) into every
    /// guest's environment; repeatable
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The host (and port) a request without a Host header is taken to
    /// have, for SERVER_NAME, SERVER_PORT and HTTP_HOST
    #[arg(long, alias = "hostname", value_name = "HOST[:PORT]")]
    pub default_host: Option<String>,
}

impl GuestEnvFlags {
    /// The variables, files first then flags (a later one of the same name
    /// replaces an earlier one).
    pub fn env(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut vars: Vec<(String, String)> = Vec::new();
        let mut set = |name: String, value: String| {
            vars.retain(|(own, _)| *own != name);
            vars.push((name, value));
        };
        for file in &self.env_file {
            for (name, value) in read_env_file(file)? {
                set(name, value);
            }
        }
        for pair in &self.env {
            let (name, value) =
                parse_pair(pair).with_context(|| format!("--env {pair:?}: expected NAME=VALUE"))?;
            set(name, value);
        }
        Ok(vars)
    }

    /// The default host as a `Host` header value.
    pub fn default_host(&self) -> anyhow::Result<Option<HeaderValue>> {
        let Some(host) = &self.default_host else {
            return Ok(None);
        };
        let valid = !host.is_empty()
            && host
                .parse::<http::uri::Authority>()
                .is_ok_and(|a| a.as_str() == host)
            && !host.contains('@');
        anyhow::ensure!(valid, "--default-host {host:?} is not a HOST or HOST:PORT");
        Ok(Some(HeaderValue::from_str(host)?))
    }
}

/// `NAME=VALUE`, with quotes around the value removed; `None` if malformed.
fn parse_pair(text: &str) -> Option<(String, String)> {
    let (name, value) = text.split_once('=')?;
    let name = name.trim();
    if name.is_empty() || name.contains(['\0', ' ']) || value.contains('\0') {
        return None;
    }
    let value = value.trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
        .unwrap_or(value);
    Some((name.to_owned(), unquoted.to_owned()))
}

/// The variables of an env file: `NAME=VALUE` lines (`NAME = "value"`,
/// `export NAME=VALUE`), blank lines and `#` comments skipped.
fn read_env_file(file: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the env file {}", file.display()))?;
    let mut vars = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let pair = parse_pair(line)
            .with_context(|| format!("{}:{}: expected NAME=VALUE", file.display(), number + 1))?;
        vars.push(pair);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_flags_and_files_are_read_wagis_way() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env.txt");
        std::fs::write(
            &file,
            "# comment\nTEST_NAME = \"test value\"\n\nexport ANOTHER='another value'\nBOTH=file\n",
        )
        .unwrap();
        let flags = GuestEnvFlags {
            env: vec!["BOTH=flag".into(), "EMPTY=".into()],
            env_file: vec![file.clone()],
            default_host: None,
        };
        let vars = flags.env().unwrap();
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("TEST_NAME"), Some("test value"));
        assert_eq!(get("ANOTHER"), Some("another value"));
        assert_eq!(get("BOTH"), Some("flag"), "--env wins over the file");
        assert_eq!(get("EMPTY"), Some(""));

        std::fs::write(&file, "GOOD=1\nno equals sign\n").unwrap();
        let error = format!("{:#}", flags.env().unwrap_err());
        assert!(error.contains("env.txt:2: expected NAME=VALUE"), "{error}");
        let bad = GuestEnvFlags {
            env: vec!["=bar".into()],
            ..GuestEnvFlags::default()
        };
        assert!(bad.env().is_err());
    }

    #[test]
    fn the_default_host_must_be_a_host_and_port() {
        let host = |text: &str| {
            GuestEnvFlags {
                default_host: Some(text.into()),
                ..GuestEnvFlags::default()
            }
            .default_host()
        };
        assert_eq!(
            host("localhost:3000").unwrap(),
            Some(HeaderValue::from_static("localhost:3000"))
        );
        for bad in ["", "http://x", "a b", "user@host", "x/y"] {
            assert!(host(bad).is_err(), "{bad:?} was accepted");
        }
    }
}

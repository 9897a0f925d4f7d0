//! `serve`'s front-door flags: HTTPS (certificate, key, client CA, a TLS
//! address of its own, redirecting plain HTTP), HTTP/2 in clear text, and
//! connection limits. Flags override the config file's keys of the same
//! name (`tls_cert`, `tls_key`, `tls_client_ca`, `tls_listen`).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::Config;
use crate::server::{TlsFiles, default_max_connections};

/// HTTPS, HTTP/2 and connection flags.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "HTTPS, HTTP/2 and connections")]
pub struct FrontDoorFlags {
    /// Serve HTTPS with this PEM certificate chain (leaf first); reloaded
    /// when the file changes
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, RSA or EC)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by these PEM CA certificates;
    /// modules see the subject as SSL_CLIENT_S_DN
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve HTTPS on this address, and plain HTTP on --listen; without
    /// it, --listen itself is HTTPS when a certificate is given
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// Answer plain HTTP requests with 308 to the HTTPS address (needs
    /// --tls-listen); /healthz and /readyz keep answering
    #[arg(long)]
    pub redirect_http: bool,
    /// Accept HTTP/2 in clear text by prior knowledge (h2c) on the plain
    /// listener (over HTTPS, HTTP/2 is negotiated with ALPN)
    #[arg(long)]
    pub h2c: bool,
    /// Connections open at once; past it new ones are closed at once
    /// [default: three quarters of the open-file limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Connections one client address (an IPv6 /64) may have open at once
    /// [default: no limit]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_client: Option<u32>,
}

/// The front door, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontDoor {
    /// The certificate files, when HTTPS is served.
    pub tls: Option<TlsFiles>,
    /// Where HTTPS is served when plain HTTP is served too.
    pub tls_listen: Option<SocketAddr>,
    /// `--redirect-http`.
    pub redirect_http: bool,
    /// `--h2c`.
    pub h2c: bool,
    /// `--max-connections`, resolved.
    pub max_connections: usize,
    /// `--max-connections-per-client`.
    pub max_connections_per_client: Option<usize>,
}

impl FrontDoorFlags {
    /// The flags over `config`'s keys; fails on a combination that can't
    /// be served.
    pub fn resolve(&self, config: &Config) -> anyhow::Result<FrontDoor> {
        let cert = self.tls_cert.clone().or(config.tls_cert.clone());
        let key = self.tls_key.clone().or(config.tls_key.clone());
        let client_ca = self.tls_client_ca.clone().or(config.tls_client_ca.clone());
        let tls_listen = self.tls_listen.or(config.tls_listen);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None) => {
                anyhow::ensure!(
                    client_ca.is_none() && tls_listen.is_none(),
                    "--tls-client-ca and --tls-listen need a certificate: give --tls-cert and --tls-key"
                );
                None
            }
            _ => {
                anyhow::bail!("HTTPS needs both a certificate and its key (--tls-cert, --tls-key)")
            }
        };
        anyhow::ensure!(
            !self.redirect_http || tls_listen.is_some(),
            "--redirect-http needs --tls-listen: the HTTPS address to redirect to"
        );
        Ok(FrontDoor {
            tls,
            tls_listen,
            redirect_http: self.redirect_http,
            h2c: self.h2c,
            max_connections: self
                .max_connections
                .map_or_else(default_max_connections, |n| n as usize),
            max_connections_per_client: self.max_connections_per_client.map(|n| n as usize),
        })
    }
}

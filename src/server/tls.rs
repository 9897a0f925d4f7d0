//! HTTPS: the rustls server configuration (TLS 1.2 and 1.3 only, ALPN `h2`
//! and `http/1.1`, client certificates when a client CA is given), loaded
//! from PEM files and reloaded when they change, so a renewed certificate
//! is served without a restart. A broken replacement is logged and the
//! pair already loaded keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::modules::Fingerprint;

/// How often the certificate files are checked for a change.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The PEM files HTTPS is served with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to; with one,
    /// every client must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
}

/// What a TLS connection tells the request: for `HTTPS`, and the client
/// certificate's subject (`SSL_CLIENT_S_DN`) when one was verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The verified client certificate's subject, RFC 4514 style
    /// (`CN=alice,O=Example`).
    pub client_subject: Option<String>,
}

/// Accepts TLS connections with the current configuration.
#[derive(Clone)]
pub struct TlsAcceptor {
    files: TlsFiles,
    config: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads the files: fails with a message naming the file and what is
    /// wrong with it.
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        let config = server_config(&files)?;
        Ok(Self {
            files,
            config: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// Runs the TLS handshake on `stream`: the session, what it tells the
    /// request, and whether ALPN chose HTTP/2.
    pub async fn accept<IO>(&self, stream: IO) -> std::io::Result<(TlsStream<IO>, TlsInfo, bool)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self
            .config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let stream = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await?;
        let client_subject = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| subject(leaf));
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok((stream, TlsInfo { client_subject }, h2))
    }

    /// Reloads the files whenever they change, for as long as it runs.
    pub async fn watch(self) {
        let fingerprint = |files: &TlsFiles| {
            [
                Some(&files.cert),
                Some(&files.key),
                files.client_ca.as_ref(),
            ]
            .map(|path| path.and_then(|path| Fingerprint::of(path).ok()))
        };
        let mut seen = fingerprint(&self.files);
        loop {
            tokio::time::sleep(RELOAD_INTERVAL).await;
            let now = fingerprint(&self.files);
            if now == seen {
                continue;
            }
            // A file being rewritten may be half there: wait for it to settle.
            tokio::time::sleep(crate::modules::reload::SETTLE).await;
            if fingerprint(&self.files) != now {
                continue;
            }
            seen = now;
            let files = self.files.clone();
            let loaded = tokio::task::spawn_blocking(move || server_config(&files)).await;
            match loaded {
                Ok(Ok(config)) => {
                    *self
                        .config
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                }
                Ok(Err(error)) => tracing::error!(
                    "TLS certificate not reloaded, the previous one keeps serving: {error:#}"
                ),
                Err(error) => tracing::error!("TLS certificate reload failed: {error}"),
            }
        }
    }
}

/// The rustls configuration for `files`.
fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| {
        anyhow::anyhow!(
            "{}: no usable private key (PKCS#8, RSA or EC, PEM): {error}",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS 1.2 and 1.3")?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a CA certificate", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .with_context(|| format!("{}: unusable client CA", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "{} and {} do not make a usable certificate and key",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Every certificate in the PEM file at `path` (at least one).
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no PEM certificate in it",
        path.display()
    );
    Ok(certs)
}

/// The subject of the DER certificate `cert`, RFC 4514 style.
fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.subject().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> TlsFiles {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            client_ca: None,
        };
        std::fs::write(&files.cert, cert.cert.pem()).unwrap();
        std::fs::write(&files.key, cert.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_pair_loads_and_bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "good");
        TlsAcceptor::load(files.clone()).unwrap();

        let other = write_pair(dir.path(), "other");
        let mismatched = TlsFiles {
            key: other.key.clone(),
            ..files.clone()
        };
        let error = TlsAcceptor::load(mismatched).unwrap_err();
        assert!(
            format!("{error:#}").contains("do not make a usable certificate and key"),
            "{error:#}"
        );

        std::fs::write(&other.key, "not a key").unwrap();
        let error = TlsAcceptor::load(TlsFiles {
            key: other.key.clone(),
            ..files.clone()
        })
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("no usable private key"),
            "{error:#}"
        );

        std::fs::write(&other.cert, "").unwrap();
        let error = TlsAcceptor::load(TlsFiles {
            cert: other.cert,
            ..files
        })
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("no PEM certificate"),
            "{error:#}"
        );
    }
}

//! The two sides' settings: [`ClientTlsConfig`] (trust roots, SNI name,
//! ALPN, session resumption) and [`ServerTlsConfig`] (certificate chain and
//! key from PEM, ALPN, session resumption), each building a rustls
//! configuration once and sharing it between connections.

use std::cell::OnceCell;
use std::fmt;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::error::TlsError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // AES-128-GCM first (then AES-256-GCM, then ChaCha20-Poly1305), as
    // browsers and Go order them: its SHA-256 key schedule runs on the
    // CPU's SHA instructions where SHA-384 has none, and AES-128 takes
    // fewer rounds. A server that follows the client's order (rustls's and
    // OpenSSL's default for TLS 1.3) picks it.
    provider
        .cipher_suites
        .sort_by_key(|suite| match suite.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
            _ => 4,
        });
    Arc::new(provider)
}

/// Reads a file for a TLS setting, naming it in the error.
fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError::config(
            path.display().to_string(),
            format!("cannot read the file: {e}"),
            Some(Arc::new(e)),
        )
    })
}

/// Renames the `what` of a configuration error.
fn about(path: &Path) -> impl Fn(TlsError) -> TlsError + '_ {
    move |e| match e {
        TlsError::Config { reason, source, .. } => TlsError::Config {
            what: path.display().to_string(),
            reason,
            source,
        },
        other => other,
    }
}

/// Every certificate of PEM text; at least one.
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        certs.push(
            cert.map_err(|e| {
                TlsError::config(what, format!("invalid PEM: {e}"), Some(Arc::new(e)))
            })?,
        );
    }
    if certs.is_empty() {
        return Err(TlsError::config(
            what,
            "no certificate in the PEM data",
            None,
        ));
    }
    Ok(certs)
}

/// A client's TLS settings (Twisted's `optionsForClientTLS`): the Mozilla
/// roots of `webpki-roots` plus any added from PEM, certificates verified,
/// SNI with the host name connected to (or [`with_server_name`]), optional
/// ALPN, and session resumption on. The rustls `ClientConfig` is built once
/// and shared by clones, so resumed sessions are shared too.
///
/// Cipher suites are rustls's (ring), offered with AES-128-GCM first, as
/// browsers and Go offer them: its SHA-256 key schedule runs on the CPU's
/// SHA instructions, which SHA-384 lacks, so a handshake costs less. For
/// another order, build a rustls `ClientConfig` and use
/// [`from_client_config`](ClientTlsConfig::from_client_config).
///
/// [`with_server_name`]: ClientTlsConfig::with_server_name
///
/// ```
/// use twined::reactor::tls::ClientTlsConfig;
///
/// let config = ClientTlsConfig::default()
///     .with_alpn(["h2", "http/1.1"])
///     .with_server_name("example.org");
/// assert_eq!(config.server_name(), Some("example.org"));
/// ```
#[derive(Clone, Default)]
pub struct ClientTlsConfig {
    extra_roots: Vec<CertificateDer<'static>>,
    alpn: Vec<Vec<u8>>,
    server_name: Option<String>,
    no_resumption: bool,
    /// Trust only the added roots, not webpki's (Twisted's `trustRoots`).
    no_default_roots: bool,
    given: Option<Arc<ClientConfig>>,
    built: Rc<OnceCell<Result<Arc<ClientConfig>, TlsError>>>,
}

impl fmt::Debug for ClientTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsConfig")
            .field("extra_roots", &self.extra_roots.len())
            .field("alpn", &self.alpn.len())
            .field("server_name", &self.server_name)
            .field("resumption", &!self.no_resumption)
            .field("default_roots", &!self.no_default_roots)
            .field("custom_client_config", &self.given.is_some())
            .finish()
    }
}

impl ClientTlsConfig {
    /// Trusts the certificates of a PEM file too.
    pub fn add_root_pem_file(self, path: impl AsRef<Path>) -> Result<ClientTlsConfig, TlsError> {
        let path = path.as_ref();
        let bytes = read(path)?;
        self.add_root_pem(&bytes).map_err(about(path))
    }

    /// Trusts the certificates of PEM text too.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<ClientTlsConfig, TlsError> {
        let certs = certificates(pem, "the CA PEM data")?;
        // Checked now, not at the first connection.
        let mut store = RootCertStore::empty();
        for cert in &certs {
            store.add(cert.clone()).map_err(|e| {
                TlsError::config("the CA PEM data", e.to_string(), Some(Arc::new(e)))
            })?;
        }
        self.extra_roots.extend(certs);
        self.built = Rc::default();
        Ok(self)
    }

    /// Offers these ALPN protocols (for example `["h2", "http/1.1"]`).
    pub fn with_alpn<P: AsRef<[u8]>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self.built = Rc::default();
        self
    }

    /// Verifies the server's certificate against `name`, and sends it as SNI,
    /// instead of the host connected to (needed for STARTTLS on a connection
    /// made to an IP address).
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name set by [`with_server_name`](Self::with_server_name).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Turns TLS session resumption off (it is on by default): every
    /// connection makes a full handshake.
    pub fn without_resumption(mut self) -> Self {
        self.no_resumption = true;
        self.built = Rc::default();
        self
    }

    /// Trusts only the roots added with [`add_root_pem_file`](Self::add_root_pem_file)
    /// / [`add_root_pem`](Self::add_root_pem), not the webpki roots (Twisted's
    /// `trustRoots`, for a private CA).
    pub fn without_default_roots(mut self) -> Self {
        self.no_default_roots = true;
        self.built = Rc::default();
        self
    }

    /// Uses this rustls configuration as it is (its roots, verifier, ALPN).
    pub fn from_client_config(config: Arc<ClientConfig>) -> ClientTlsConfig {
        ClientTlsConfig {
            given: Some(config),
            ..ClientTlsConfig::default()
        }
    }

    /// The rustls configuration, built on first use.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        if let Some(given) = &self.given {
            return Ok(given.clone());
        }
        self.built
            .get_or_init(|| {
                let mut roots = if self.no_default_roots {
                    RootCertStore::empty()
                } else {
                    RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    }
                };
                for cert in &self.extra_roots {
                    roots.add(cert.clone()).map_err(|e| {
                        TlsError::config("a CA certificate", e.to_string(), Some(Arc::new(e)))
                    })?;
                }
                let mut config = ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| {
                        TlsError::config("protocol versions", e.to_string(), Some(Arc::new(e)))
                    })?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                config.alpn_protocols = self.alpn.clone();
                if self.no_resumption {
                    config.resumption = rustls::client::Resumption::disabled();
                }
                Ok(Arc::new(config))
            })
            .clone()
    }
}

/// The name to verify a server against: a DNS name, or an IP address
/// (IPv6 with or without brackets).
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = crate::threads::unbracket(name);
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::ServerName {
        name: name.to_string(),
    })
}

/// A server's TLS settings (Twisted's `CertificateOptions` /
/// `PrivateCertificate`): a certificate chain and its key, optional ALPN,
/// session resumption by session IDs on.
///
/// ```no_run
/// use twined::reactor::tls::ServerTlsConfig;
///
/// let config = ServerTlsConfig::from_pem_files("cert.pem", "key.pem")
///     .unwrap()
///     .with_alpn(["http/1.1"]);
/// # drop(config);
/// ```
#[derive(Clone)]
pub struct ServerTlsConfig {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsConfig")
            .field("alpn", &self.config.alpn_protocols.len())
            .finish_non_exhaustive()
    }
}

impl ServerTlsConfig {
    /// The chain of `cert_path` (the server's certificate first) and the
    /// private key of `key_path` (PKCS#8, PKCS#1 or SEC1), both PEM.
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<ServerTlsConfig, TlsError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let chain = certificates(&read(cert_path)?, "").map_err(about(cert_path))?;
        let key = private_key(&read(key_path)?).map_err(about(key_path))?;
        ServerTlsConfig::from_der(chain, key)
    }

    /// [`from_pem_files`](Self::from_pem_files) from PEM text.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerTlsConfig, TlsError> {
        let chain = certificates(cert_pem, "the certificate PEM data")?;
        let key = private_key(key_pem)?;
        ServerTlsConfig::from_der(chain, key)
    }

    /// A chain and key already decoded.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ServerTlsConfig, TlsError> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::config("protocol versions", e.to_string(), Some(Arc::new(e))))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                TlsError::config("the certificate and key", e.to_string(), Some(Arc::new(e)))
            })?;
        Ok(ServerTlsConfig {
            config: Arc::new(config),
        })
    }

    /// Uses this rustls configuration as it is.
    pub fn from_server_config(config: Arc<ServerConfig>) -> ServerTlsConfig {
        ServerTlsConfig { config }
    }

    /// Accepts these ALPN protocols, in order of preference.
    pub fn with_alpn<P: AsRef<[u8]>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
        Arc::make_mut(&mut self.config).alpn_protocols =
            protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Turns session resumption off: every client makes a full handshake.
    pub fn without_resumption(mut self) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        self
    }

    /// The rustls configuration.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        TlsError::config(
            "the key PEM data",
            format!("no usable private key: {e}"),
            Some(Arc::new(e)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite;

    #[test]
    fn aes_128_gcm_is_offered_first_and_nothing_is_dropped() {
        let config = ClientTlsConfig::default().client_config().unwrap();
        let offered: Vec<CipherSuite> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(offered[0], CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(offered[1], CipherSuite::TLS13_AES_256_GCM_SHA384);
        let mut all: Vec<CipherSuite> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let mut ours = offered.clone();
        all.sort_by_key(|s| u16::from(*s));
        ours.sort_by_key(|s| u16::from(*s));
        assert_eq!(ours, all);
    }
}

//! A self-signed certificate for `localhost`, and the TLS server settings
//! the tests make from it (twined's, or plain rustls for a peer that is not
//! twined).
#![allow(dead_code)]

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use twined::reactor::tls::ServerTlsConfig;

/// A certificate for `localhost` and its key.
pub struct Localhost {
    /// The certificate, PEM: what a client is told to trust.
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
}

/// A new self-signed certificate for `localhost`.
pub fn localhost() -> Localhost {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    Localhost {
        cert_pem: certified.cert.pem(),
        key_pem: certified.key_pair.serialize_pem(),
        cert_der: certified.cert.der().clone(),
        key_pkcs8: certified.key_pair.serialize_der(),
    }
}

impl Localhost {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }

    /// twined's server settings, offering `http/1.1` by ALPN.
    pub fn server_tls(&self) -> ServerTlsConfig {
        ServerTlsConfig::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
            .unwrap()
            .with_alpn(["http/1.1"])
    }

    /// A plain rustls server configuration (ring), for servers on threads.
    pub fn rustls_server(&self) -> Arc<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![self.cert_der.clone()], self.key_der())
        .unwrap();
        Arc::new(config)
    }
}

//! Where `ssl:` and `tls:` endpoints meet the reactor's TLS layer
//! ([`listen_ssl`](crate::reactor::listen_ssl),
//! [`connect_protocol_ssl`](crate::reactor::connect_protocol_ssl)): the
//! description's files become rustls configurations here. Without the `tls`
//! feature both fail with [`EndpointError::TlsUnavailable`], after the
//! description has been parsed and checked in full.

use super::error::EndpointError;
use super::port::ListeningPort;
use super::spec::{ClientSpec, ServerSpec};
use crate::defer::{self, Deferred};
use crate::protocol::{Factory, Transport};

#[cfg(feature = "tls")]
mod wired {
    use std::path::{Path, PathBuf};

    use super::super::endpoint::BuildOnConnect;
    use super::super::spec::bind_address;
    use super::*;
    use crate::defer::Failure;
    use crate::reactor::tls::{ClientTlsConfig, ServerTlsConfig, TlsError};
    use crate::reactor::{self, ConnectOptions};

    /// Reads a PEM file for the server configuration, naming it on failure.
    fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
        std::fs::read(path).map_err(|e| {
            TlsError::config(
                path.display().to_string(),
                e.to_string(),
                Some(std::sync::Arc::new(e)),
            )
        })
    }

    /// The server's certificate chain (`certKey`, then `extraCertChain`) and
    /// key (`privateKey`).
    fn server_config(
        cert_key: &Path,
        extra_cert_chain: Option<&Path>,
        private_key: &Path,
    ) -> Result<ServerTlsConfig, TlsError> {
        let mut chain = read(cert_key)?;
        if let Some(extra) = extra_cert_chain {
            chain.push(b'\n');
            chain.extend(read(extra)?);
        }
        ServerTlsConfig::from_pem(&chain, &read(private_key)?)
    }

    /// Every `.pem` / `.crt` file of `dir`, trusted instead of the webpki
    /// roots.
    fn trust_only(dir: &Path) -> Result<ClientTlsConfig, TlsError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            TlsError::config(
                dir.display().to_string(),
                e.to_string(),
                Some(std::sync::Arc::new(e)),
            )
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("pem" | "crt")))
            .collect();
        files.sort();
        let mut config = ClientTlsConfig::default().without_default_roots();
        for file in files {
            config = config.add_root_pem_file(file)?;
        }
        Ok(config)
    }

    pub(super) fn listen(spec: &ServerSpec, factory: impl Factory) -> Deferred<ListeningPort> {
        let ServerSpec::Ssl {
            port,
            interface,
            private_key,
            cert_key,
            extra_cert_chain,
            ..
        } = spec
        else {
            return defer::fail(EndpointError::WrongKind {
                kind: spec.kind(),
                asked: "listen with TLS",
            });
        };
        let config = match server_config(cert_key, extra_cert_chain.as_deref(), private_key) {
            Ok(config) => config,
            Err(e) => return defer::fail(e),
        };
        match reactor::listen_ssl(bind_address(interface, *port), factory, config) {
            Ok(port) => defer::succeed(ListeningPort::Tcp(port)),
            Err(e) => defer::fail(e),
        }
    }

    pub(super) fn connect(spec: &ClientSpec, factory: impl Factory) -> Deferred<Transport> {
        let (host, port, timeout, certificate, roots) = match spec {
            ClientSpec::Tls {
                host,
                port,
                timeout,
                certificate,
                private_key,
                trust_roots,
            } => (
                host,
                *port,
                *timeout,
                certificate.as_ref().or(private_key.as_ref()),
                trust_roots.as_deref(),
            ),
            ClientSpec::Ssl {
                host,
                port,
                timeout,
                cert_key,
                private_key,
                ca_certs_dir,
            } => (
                host,
                *port,
                *timeout,
                cert_key.as_ref().or(private_key.as_ref()),
                ca_certs_dir.as_deref(),
            ),
            other => {
                return defer::fail(EndpointError::WrongKind {
                    kind: other.kind(),
                    asked: "connect with TLS",
                })
            }
        };
        if certificate.is_some() {
            return defer::fail(EndpointError::Unsupported {
                field: "certificate",
                why: "client certificates are not supported yet",
            });
        }
        let config = match roots.map(trust_only) {
            None => ClientTlsConfig::default(),
            Some(Ok(config)) => config,
            Some(Err(e)) => return defer::fail(Failure::new(e)),
        };
        let options = ConnectOptions {
            timeout: Some(timeout),
            ..ConnectOptions::default()
        };
        reactor::connect_protocol_ssl(host, port, BuildOnConnect::new(factory), &config, options)
    }
}

/// Listens on a [`ServerSpec::Ssl`] endpoint.
pub(super) fn listen(spec: &ServerSpec, factory: impl Factory) -> Deferred<ListeningPort> {
    #[cfg(feature = "tls")]
    return wired::listen(spec, factory);
    #[cfg(not(feature = "tls"))]
    {
        drop(factory);
        defer::fail(EndpointError::TlsUnavailable { kind: spec.kind() })
    }
}

/// Connects to a [`ClientSpec::Tls`] or [`ClientSpec::Ssl`] endpoint.
pub(super) fn connect(spec: &ClientSpec, factory: impl Factory) -> Deferred<Transport> {
    #[cfg(feature = "tls")]
    return wired::connect(spec, factory);
    #[cfg(not(feature = "tls"))]
    {
        drop(factory);
        defer::fail(EndpointError::TlsUnavailable { kind: spec.kind() })
    }
}

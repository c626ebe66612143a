//! What each endpoint type takes, parsed from its description into a typed
//! spec (Twisted's `_parseTCP`, `_parseSSL`, `_parseUNIX`, `_parseClientTCP`,
//! `_parseClientSSL`, `_parseClientTLS`, `_parseClientUNIX`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::error::EndpointError;
use super::parse::{self, Take};

/// A server endpoint's description, typed: what
/// [`server_from_string`](super::server_from_string) parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerSpec {
    /// `tcp:PORT[:interface=ADDR][:backlog=N]`; `tcp6:PORT` is the same with
    /// `::` (every IPv6 interface) as the default interface.
    Tcp {
        /// The port (0: any free one).
        port: u16,
        /// The address to bind; empty (the default) is every IPv4 interface.
        interface: String,
        /// Twisted's listen backlog (default 50); parsed and checked, the
        /// system's backlog applies.
        backlog: u32,
    },
    /// `ssl:PORT[:privateKey=PEM][:certKey=PEM][:interface=ADDR][:backlog=N]
    /// [:extraCertChain=PEM][:dhParameters=PEM][:sslmethod=NAME]`.
    Ssl {
        /// The port.
        port: u16,
        /// The address to bind; empty is every IPv4 interface.
        interface: String,
        /// The listen backlog (default 50).
        backlog: u32,
        /// The private key file (default `server.pem`).
        private_key: PathBuf,
        /// The certificate file (default: the private key's file).
        cert_key: PathBuf,
        /// More certificates to send after `cert_key`'s.
        extra_cert_chain: Option<PathBuf>,
        /// Diffie-Hellman parameters (Twisted's `dhParameters`).
        dh_parameters: Option<PathBuf>,
        /// Twisted's `sslmethod`, as given.
        ssl_method: Option<String>,
    },
    /// `unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0|1]`.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// Its permission bits (default `0o666`).
        mode: u32,
        /// The listen backlog (default 50).
        backlog: u32,
        /// Take over a stale socket file (default on, as Twisted's
        /// `lockfile=1`); a live one is never touched.
        lockfile: bool,
    },
    /// `udp:PORT[:interface=ADDR]` (twined's own; Twisted has no UDP
    /// endpoint string).
    Udp {
        /// The port.
        port: u16,
        /// The address to bind; empty is every IPv4 interface.
        interface: String,
    },
}

/// A client endpoint's description, typed: what
/// [`client_from_string`](super::client_from_string) parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientSpec {
    /// `tcp:HOST:PORT` or `tcp:host=HOST:port=PORT`, `[:timeout=SECONDS]`.
    Tcp {
        /// The host name or IP literal.
        host: String,
        /// The port.
        port: u16,
        /// Time allowed to connect (default 30 s).
        timeout: Duration,
    },
    /// `ssl:HOST:PORT[:timeout=S][:certKey=PEM][:privateKey=PEM][:caCertsDir=DIR]`.
    Ssl {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// Time allowed to connect (default 30 s).
        timeout: Duration,
        /// A client certificate.
        cert_key: Option<PathBuf>,
        /// The client certificate's key.
        private_key: Option<PathBuf>,
        /// A directory of CA certificates to trust.
        ca_certs_dir: Option<PathBuf>,
    },
    /// `tls:HOST:PORT[:timeout=S][:certificate=PEM][:privateKey=PEM][:trustRoots=DIR]`.
    Tls {
        /// The host (also the name the certificate is checked against).
        host: String,
        /// The port.
        port: u16,
        /// Time allowed to connect (default 30 s).
        timeout: Duration,
        /// A client certificate.
        certificate: Option<PathBuf>,
        /// The client certificate's key.
        private_key: Option<PathBuf>,
        /// A directory of CA certificates to trust instead of the defaults.
        trust_roots: Option<PathBuf>,
    },
    /// `unix:PATH` or `unix:path=PATH`, `[:timeout=S][:checkPID=0]`.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// Time allowed to connect (a Unix connect never waits; kept for
        /// Twisted's syntax).
        timeout: Duration,
    },
}

const SERVER_TYPES: &str = "tcp, tcp6, ssl, unix, udp";
const CLIENT_TYPES: &str = "tcp, ssl, tls, unix";

fn backlog(t: &mut Take) -> Result<u32, EndpointError> {
    t.keyword("backlog")
        .map_or(Ok(50), |v| parse::number("backlog", &v))
}

fn timeout(t: &mut Take) -> Result<Duration, EndpointError> {
    match t.keyword("timeout") {
        None => Ok(Duration::from_secs(30)),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
            .map(Duration::from_secs_f64)
            .ok_or(EndpointError::BadValue {
                field: "timeout",
                value: v,
                expected: "a number of seconds",
            }),
    }
}

fn refuse_bind_address(t: &mut Take) -> Result<(), EndpointError> {
    if t.keyword("bindAddress").is_some() {
        return Err(EndpointError::Unsupported {
            field: "bindAddress",
            why: "outgoing connections cannot be bound to a local address yet",
        });
    }
    Ok(())
}

fn path(t: &mut Take, name: &'static str) -> Option<PathBuf> {
    t.keyword(name).map(PathBuf::from)
}

impl ServerSpec {
    /// Parses a server description (Twisted's `serverFromString` syntax).
    pub fn parse(description: &str) -> Result<ServerSpec, EndpointError> {
        let fields = parse::split(description)?;
        let spec = match fields.kind.as_str() {
            "tcp" | "tcp6" => {
                // Twisted's tcp6: the same fields, every IPv6 interface by default.
                let default = if fields.kind == "tcp6" { "::" } else { "" };
                let mut t = Take::new("tcp", fields);
                let port = parse::port("port", &t.required("port")?)?;
                let interface = t.keyword("interface").unwrap_or(default.to_string());
                let backlog = backlog(&mut t)?;
                t.finish()?;
                ServerSpec::Tcp {
                    port,
                    interface,
                    backlog,
                }
            }
            "ssl" => {
                let mut t = Take::new("ssl", fields);
                let port = parse::port("port", &t.required("port")?)?;
                let private_key =
                    PathBuf::from(t.keyword("privateKey").unwrap_or("server.pem".into()));
                let cert_key = path(&mut t, "certKey").unwrap_or_else(|| private_key.clone());
                let interface = t.keyword("interface").unwrap_or_default();
                let backlog = backlog(&mut t)?;
                let spec = ServerSpec::Ssl {
                    port,
                    interface,
                    backlog,
                    private_key,
                    cert_key,
                    extra_cert_chain: path(&mut t, "extraCertChain"),
                    dh_parameters: path(&mut t, "dhParameters"),
                    ssl_method: t.keyword("sslmethod"),
                };
                t.finish()?;
                spec
            }
            "unix" => {
                let mut t = Take::new("unix", fields);
                let path = PathBuf::from(t.required("address")?);
                if path.as_os_str().is_empty() {
                    return Err(EndpointError::Missing {
                        kind: "unix",
                        field: "address",
                    });
                }
                let mode = match t.keyword("mode") {
                    None => 0o666,
                    Some(v) => u32::from_str_radix(&v, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or(EndpointError::BadValue {
                            field: "mode",
                            value: v,
                            expected: "octal permission bits such as 660",
                        })?,
                };
                let backlog = backlog(&mut t)?;
                let lockfile = t
                    .keyword("lockfile")
                    .map_or(Ok(true), |v| parse::boolean("lockfile", &v))?;
                t.finish()?;
                ServerSpec::Unix {
                    path,
                    mode,
                    backlog,
                    lockfile,
                }
            }
            "udp" => {
                let mut t = Take::new("udp", fields);
                let port = parse::port("port", &t.required("port")?)?;
                let interface = t.keyword("interface").unwrap_or_default();
                t.finish()?;
                ServerSpec::Udp { port, interface }
            }
            other => {
                return Err(EndpointError::UnknownType {
                    kind: other.to_string(),
                    known: SERVER_TYPES,
                })
            }
        };
        Ok(spec)
    }

    /// The endpoint type's name (`tcp`, `ssl`, `unix`, `udp`).
    pub fn kind(&self) -> &'static str {
        match self {
            ServerSpec::Tcp { .. } => "tcp",
            ServerSpec::Ssl { .. } => "ssl",
            ServerSpec::Unix { .. } => "unix",
            ServerSpec::Udp { .. } => "udp",
        }
    }
}

/// `interface:port` as a bind address (`[v6]:port` for IPv6).
pub(crate) fn bind_address(interface: &str, port: u16) -> String {
    match interface {
        "" => format!("0.0.0.0:{port}"),
        i if i.contains(':') && !i.starts_with('[') => format!("[{i}]:{port}"),
        i => format!("{i}:{port}"),
    }
}

impl ClientSpec {
    /// Parses a client description (Twisted's `clientFromString` syntax).
    pub fn parse(description: &str) -> Result<ClientSpec, EndpointError> {
        let fields = parse::split(description)?;
        let spec = match fields.kind.as_str() {
            "tcp" => {
                let mut t = Take::new("tcp", fields);
                let host = t.required("host")?;
                let port = parse::port("port", &t.required("port")?)?;
                let timeout = timeout(&mut t)?;
                refuse_bind_address(&mut t)?;
                t.finish()?;
                ClientSpec::Tcp {
                    host,
                    port,
                    timeout,
                }
            }
            "ssl" => {
                let mut t = Take::new("ssl", fields);
                let host = t.required("host")?;
                let port = parse::port("port", &t.required("port")?)?;
                let timeout = timeout(&mut t)?;
                refuse_bind_address(&mut t)?;
                let spec = ClientSpec::Ssl {
                    host,
                    port,
                    timeout,
                    cert_key: path(&mut t, "certKey"),
                    private_key: path(&mut t, "privateKey"),
                    ca_certs_dir: path(&mut t, "caCertsDir"),
                };
                t.finish()?;
                spec
            }
            "tls" => {
                let mut t = Take::new("tls", fields);
                let host = t.required("host")?;
                let port = parse::port("port", &t.required("port")?)?;
                let timeout = timeout(&mut t)?;
                refuse_bind_address(&mut t)?;
                if t.has_keyword("endpoint") {
                    return Err(EndpointError::Unsupported {
                        field: "endpoint",
                        why: "TLS over another endpoint is not supported yet",
                    });
                }
                let spec = ClientSpec::Tls {
                    host,
                    port,
                    timeout,
                    certificate: path(&mut t, "certificate"),
                    private_key: path(&mut t, "privateKey"),
                    trust_roots: path(&mut t, "trustRoots"),
                };
                t.finish()?;
                spec
            }
            "unix" => {
                let mut t = Take::new("unix", fields);
                let path = PathBuf::from(t.required("path")?);
                let timeout = timeout(&mut t)?;
                if let Some(v) = t.keyword("checkPID") {
                    if parse::boolean("checkPID", &v)? {
                        return Err(EndpointError::Unsupported {
                            field: "checkPID",
                            why: "twined's Unix servers write no lock file to check",
                        });
                    }
                }
                t.finish()?;
                ClientSpec::Unix { path, timeout }
            }
            other => {
                return Err(EndpointError::UnknownType {
                    kind: other.to_string(),
                    known: CLIENT_TYPES,
                })
            }
        };
        Ok(spec)
    }

    /// The endpoint type's name (`tcp`, `ssl`, `tls`, `unix`).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientSpec::Tcp { .. } => "tcp",
            ClientSpec::Ssl { .. } => "ssl",
            ClientSpec::Tls { .. } => "tls",
            ClientSpec::Unix { .. } => "unix",
        }
    }
}

impl fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerSpec::Tcp {
                port, interface, ..
            }
            | ServerSpec::Ssl {
                port, interface, ..
            }
            | ServerSpec::Udp { port, interface } => {
                write!(f, "{}:{}", self.kind(), bind_address(interface, *port))
            }
            ServerSpec::Unix { path, .. } => write!(f, "unix:{}", path.display()),
        }
    }
}

impl fmt::Display for ClientSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSpec::Tcp { host, port, .. }
            | ClientSpec::Ssl { host, port, .. }
            | ClientSpec::Tls { host, port, .. } => write!(f, "{}:{host}:{port}", self.kind()),
            ClientSpec::Unix { path, .. } => write!(f, "unix:{}", path.display()),
        }
    }
}

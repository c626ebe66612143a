//! A connection to an origin through a proxy's tunnel: TCP to the proxy,
//! then its handshake — an HTTP proxy's `CONNECT host:port` with the
//! answer read under the head limit, or a SOCKS5 handshake
//! ([`socks`](super::socks)) — then, for `https://`, TLS with the origin
//! over the same connection (the reactor's TLS layer, pushed onto the
//! transport as STARTTLS pushes it), then HTTP as on a direct connection.
//! (`http://` goes through a tunnel only through a SOCKS5 proxy; an HTTP
//! proxy forwards it.)
//!
//! One timer, the agent's connect timeout, covers all of it: reaching the
//! proxy, its answer and the handshake with the origin.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::conn::HttpProtocol;
use super::proxy::{Proxy, ProxyScheme};
use super::socks;
#[cfg(feature = "tls")]
use super::tls::TlsConfig;
use crate::defer::{Deferred, Failure, Trigger};
use crate::protocol::{ConnectionDone, Protocol, Transport};
#[cfg(feature = "tls")]
use crate::reactor::tls::TlsError;
use crate::reactor::{self, ConnectOptions};
use crate::web::error::copy_io_error;
use crate::web::http1::{parse_response_head, write_request_head, CodecError};
use crate::web::{Cause, Error, Headers, ProxyError, TimeoutStage};

/// What a tunnel is asked for.
pub(crate) struct TunnelTo<'a> {
    /// The proxy.
    pub(crate) proxy: &'a Proxy,
    /// The origin's host (an IPv6 literal in brackets) and port.
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    /// The origin's address, resolved by the client, for a `socks5://`
    /// proxy (`None`: the name is sent).
    pub(crate) address: Option<IpAddr>,
    /// Trust settings for TLS with the origin (`https://`); `None`: HTTP
    /// in the clear inside the tunnel (`http://` through SOCKS5).
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<&'a TlsConfig>,
    /// Largest answer to `CONNECT` accepted.
    pub(crate) head_limit: usize,
    /// The `User-Agent` sent with `CONNECT`.
    pub(crate) user_agent: &'a str,
    /// Time allowed for the whole connect.
    pub(crate) timeout: Option<Duration>,
    /// The agent's name cache, for the proxy's name.
    pub(crate) dns: Option<crate::reactor::DnsCache>,
}

/// Fires the connect's Deferred once; later results are dropped.
type Fire = Rc<dyn Fn(Result<(), Failure>)>;

/// Opens a tunnel through `to.proxy` and runs `inner` inside it, over TLS
/// when `to.tls` says so; fires once the tunnel is open and the TLS
/// handshake with the origin, if any, is done. It errbacks with
/// an [`Error::Proxy`] when the proxy refuses, closes or answers garbage,
/// an [`Error::Tls`] when the origin's certificate is refused, an
/// [`Error::Timeout`] when the connect timeout runs out, and with the
/// reactor's connect failure when the proxy cannot be reached (the caller
/// names it). Cancelling it closes whatever is open.
pub(crate) fn connect(to: TunnelTo<'_>, inner: HttpProtocol) -> Deferred<()> {
    let proxy_label = to.proxy.label();
    let authority = format!("{}:{}", to.host, to.port);
    let sni = to.host.trim_start_matches('[').trim_end_matches(']');
    let (phase, hello) = if to.proxy.scheme() == ProxyScheme::Http {
        let mut headers = Headers::new();
        headers.append("Host", authority.clone());
        headers.append("User-Agent", to.user_agent.to_string());
        if let Some(auth) = to.proxy.authorization() {
            headers.append("Proxy-Authorization", auth.to_string());
        }
        let mut request = Vec::with_capacity(256);
        if let Err(error) = write_request_head(&mut request, "CONNECT", &authority, &headers) {
            return crate::defer::fail(Error::Url {
                url: authority,
                reason: error.to_string(),
            });
        }
        (Phase::Asking { answer: Vec::new() }, request)
    } else {
        let target = match (to.address, sni.parse::<IpAddr>()) {
            (Some(ip), _) | (None, Ok(ip)) => socks::Target::Ip(ip),
            (None, Err(_)) => socks::Target::Name(sni.to_string()),
        };
        match socks::Handshake::new(&target, to.port, authority.clone(), to.proxy.credentials()) {
            Ok((handshake, greeting)) => (Phase::Socks(handshake), greeting),
            Err(error) => {
                return crate::defer::fail(Error::Proxy {
                    proxy: proxy_label,
                    error,
                })
            }
        }
    };

    let (d, trigger) = Deferred::new();
    let slot: Rc<RefCell<Option<Trigger<()>>>> = Rc::new(RefCell::new(Some(trigger)));
    let fire: Fire = Rc::new(move |result| {
        let trigger = slot.borrow_mut().take();
        if let Some(trigger) = trigger {
            trigger.fire_with(result);
        }
    });
    let timer = to.timeout.map(|after| {
        let fire = fire.clone();
        let host = format!("{authority} through proxy {proxy_label}");
        reactor::call_later(after, move || {
            fire(Err(Failure::new(Error::Timeout {
                stage: TimeoutStage::Connect,
                host,
                after,
            })))
        })
    });
    let tunnel = Tunnel {
        phase,
        wire: None,
        inner,
        hello,
        head_limit: to.head_limit,
        proxy: proxy_label,
        authority,
        #[cfg(feature = "tls")]
        sni: sni.to_string(),
        #[cfg(feature = "tls")]
        tls: to.tls.cloned(),
        fire: fire.clone(),
    };
    let proxy_host = to
        .proxy
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let options = ConnectOptions {
        timeout: None,
        dns: to.dns.clone(),
        ..ConnectOptions::default()
    };
    let failed = move |failure| fire(Err(failure));
    reactor::tcp::connect_layered(
        proxy_host,
        to.proxy.port(),
        tunnel,
        options,
        d,
        failed,
        timer,
    )
}

/// Where the tunnel is.
enum Phase {
    /// `CONNECT` sent to an HTTP proxy; its answer is read into `answer`.
    Asking { answer: Vec<u8> },
    /// The SOCKS5 handshake runs.
    Socks(socks::Handshake),
    /// The proxy said yes: the connection is the origin's (through TLS
    /// when asked), and what arrives goes to the HTTP protocol.
    Open,
    /// The proxy refused or failed; the connection is being closed.
    Failed,
}

/// The protocol on the connection to the proxy.
struct Tunnel {
    phase: Phase,
    wire: Option<Transport>,
    inner: HttpProtocol,
    /// The first bytes sent: the `CONNECT` request or the SOCKS5 greeting.
    hello: Vec<u8>,
    head_limit: usize,
    /// `host:port` of the proxy, for errors.
    proxy: String,
    /// `host:port` of the origin.
    authority: String,
    /// The origin's name for SNI and the certificate check.
    #[cfg(feature = "tls")]
    sni: String,
    /// Trust settings for TLS with the origin; `None`: no TLS.
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
    fire: Fire,
}

impl Tunnel {
    /// The proxy failed the tunnel: report it, close the connection.
    fn fail(&mut self, error: ProxyError) {
        self.phase = Phase::Failed;
        (self.fire)(Err(Failure::new(Error::Proxy {
            proxy: self.proxy.clone(),
            error,
        })));
        if let Some(wire) = &self.wire {
            wire.abort_connection();
        }
    }

    /// Reads the proxy's answer to `CONNECT`.
    fn on_answer(&mut self, data: &[u8]) {
        let Phase::Asking { answer } = &mut self.phase else {
            return;
        };
        answer.extend_from_slice(data);
        let (head, rest) = loop {
            match parse_response_head(answer, self.head_limit) {
                Ok(None) => return,
                Err(error) => return self.fail(ProxyError::BadReply { error }),
                Ok(Some((head, len))) if (100..200).contains(&head.status) => {
                    answer.drain(..len); // interim answer
                }
                Ok(Some((head, len))) => break (head, answer.len() - len),
            }
        };
        if !(200..300).contains(&head.status) {
            return self.fail(ProxyError::Refused {
                request: format!("CONNECT {}", self.authority),
                status: head.status,
                reason: head.reason,
            });
        }
        if rest > 0 {
            // The origin speaks after our ClientHello only: these bytes are
            // the proxy's, and would be taken for TLS records.
            let error = CodecError::BadHead(format!(
                "{rest} bytes after the proxy's {} answer, before the TLS handshake",
                head.status
            ));
            return self.fail(ProxyError::BadReply { error });
        }
        self.open();
    }

    /// Runs the SOCKS5 handshake on the proxy's bytes.
    fn on_socks(&mut self, data: &[u8]) {
        let Phase::Socks(handshake) = &mut self.phase else {
            return;
        };
        match handshake.receive(data) {
            Ok(socks::Step::Wait) => {}
            Ok(socks::Step::Send(bytes)) => {
                if let Some(wire) = &self.wire {
                    wire.write(&bytes);
                }
            }
            Ok(socks::Step::Done) => self.open(),
            Err(error) => self.fail(error),
        }
    }

    /// The tunnel is open: hands the connection to the HTTP protocol,
    /// through TLS with the origin when asked.
    fn open(&mut self) {
        self.phase = Phase::Open;
        let Some(wire) = self.wire.clone() else {
            return;
        };
        // The protocol's transport handle goes through the TLS layer once
        // it is pushed.
        self.inner.connection_made(wire.clone());
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return self.start_tls(&wire, tls);
        }
        (self.fire)(Ok(()));
    }

    /// Starts TLS with the origin over the tunnel.
    #[cfg(feature = "tls")]
    fn start_tls(&self, wire: &Transport, tls: &TlsConfig) {
        let fire = self.fire.clone();
        let proxy = self.proxy.clone();
        let sni = self.sni.clone();
        let ready = Box::new(move |result: Result<Transport, Failure>| {
            fire(
                result
                    .map(|_| ())
                    .map_err(|failure| handshake_failure(&proxy, &sni, failure)),
            )
        });
        if let Err(e) = wire.start_tls_client(tls.client(), &self.sni, ready) {
            (self.fire)(Err(Failure::new(super::tls::web_error(&self.sni, e))));
            wire.abort_connection();
        }
    }
}

/// The error for a TLS handshake through the tunnel that did not finish: a
/// tunnel that closed is the proxy's failure; a refused certificate is the
/// origin's, as on a direct connection.
#[cfg(feature = "tls")]
fn handshake_failure(proxy: &str, host: &str, failure: Failure) -> Failure {
    match failure.downcast_ref::<TlsError>() {
        Some(e @ TlsError::Closed { .. }) => Failure::new(Error::Proxy {
            proxy: proxy.to_string(),
            error: ProxyError::Closed {
                during: "during the TLS handshake through the tunnel",
                cause: Some(Arc::new(e.clone())),
            },
        }),
        Some(e) => Failure::new(super::tls::web_error(host, e.clone())),
        None => failure,
    }
}

/// The cause kept from a connection-lost reason: the system's error, if
/// the connection did not simply close.
fn lost_cause(reason: &Failure) -> Option<Cause> {
    if reason.check::<ConnectionDone>() {
        return None;
    }
    let source = match reason.downcast_ref::<crate::protocol::ConnectionLost>() {
        Some(lost) => copy_io_error(&lost.source),
        None => std::io::Error::other(reason.to_string()),
    };
    Some(Arc::new(source))
}

impl Protocol for Tunnel {
    fn connection_made(&mut self, transport: Transport) {
        transport.write(&self.hello);
        self.wire = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        match self.phase {
            Phase::Asking { .. } => self.on_answer(data),
            Phase::Socks(_) => self.on_socks(data),
            Phase::Open => self.inner.data_received(data),
            Phase::Failed => {}
        }
    }

    fn connection_lost(&mut self, reason: Failure) {
        match std::mem::replace(&mut self.phase, Phase::Failed) {
            Phase::Asking { .. } => (self.fire)(Err(Failure::new(Error::Proxy {
                proxy: self.proxy.clone(),
                error: ProxyError::Closed {
                    during: "before answering CONNECT",
                    cause: lost_cause(&reason),
                },
            }))),
            Phase::Socks(handshake) => (self.fire)(Err(Failure::new(Error::Proxy {
                proxy: self.proxy.clone(),
                error: ProxyError::Closed {
                    during: handshake.waiting_for(),
                    cause: lost_cause(&reason),
                },
            }))),
            Phase::Open => {
                (self.fire)(Err(reason.clone()));
                self.inner.connection_lost(reason);
            }
            Phase::Failed => {}
        }
    }

    fn pause_producing(&mut self) {
        if let Phase::Open = self.phase {
            self.inner.pause_producing();
        }
    }

    fn resume_producing(&mut self) {
        if let Phase::Open = self.phase {
            self.inner.resume_producing();
        }
    }
}

//! Where `ssl:` and `tls:` endpoints meet the reactor's TLS layer: the one
//! place to change when `listen_ssl`/`connect_ssl` arrive. Until then both
//! fail with [`EndpointError::TlsUnavailable`], after the description has
//! been parsed and checked in full.

use super::error::EndpointError;
use super::port::ListeningPort;
use super::spec::{ClientSpec, ServerSpec};
use crate::defer::{self, Deferred};
use crate::protocol::{Factory, Transport};

/// Listens on a [`ServerSpec::Ssl`] endpoint.
pub(super) fn listen(spec: &ServerSpec, factory: impl Factory) -> Deferred<ListeningPort> {
    drop(factory);
    defer::fail(EndpointError::TlsUnavailable { kind: spec.kind() })
}

/// Connects to a [`ClientSpec::Tls`] or [`ClientSpec::Ssl`] endpoint.
pub(super) fn connect(spec: &ClientSpec, factory: impl Factory) -> Deferred<Transport> {
    drop(factory);
    defer::fail(EndpointError::TlsUnavailable { kind: spec.kind() })
}

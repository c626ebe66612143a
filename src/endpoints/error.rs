//! Why an endpoint description was refused, or an endpoint could not be used.

use std::error::Error;
use std::fmt;

/// A malformed endpoint description, or an endpoint used for what it cannot
/// do. Every variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// No endpoint type before the first `:` (`"=80"`, `""`).
    MissingType {
        /// The description as given.
        description: String,
    },
    /// The type is not one this build knows.
    UnknownType {
        /// The type as given.
        kind: String,
        /// The types that are known.
        known: &'static str,
    },
    /// A `\` at the very end, escaping nothing.
    DanglingEscape {
        /// The description as given.
        description: String,
    },
    /// A required field is absent (`"tcp:"` has no port).
    Missing {
        /// The endpoint type.
        kind: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field's value is malformed.
    BadValue {
        /// The field.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What the field takes.
        expected: &'static str,
    },
    /// A `key=value` field this endpoint type does not take.
    UnknownField {
        /// The endpoint type.
        kind: &'static str,
        /// The key as given.
        field: String,
    },
    /// More positional fields than the type takes.
    TooManyFields {
        /// The endpoint type.
        kind: &'static str,
        /// The fields left over.
        extra: Vec<String>,
    },
    /// The same key given twice.
    Repeated {
        /// The key.
        field: String,
    },
    /// A field twined parses but cannot honour yet; refused rather than
    /// silently ignored.
    Unsupported {
        /// The field.
        field: &'static str,
        /// Why.
        why: &'static str,
    },
    /// A `ssl:` or `tls:` endpoint, and this build has no TLS listener or
    /// connector to hand it to.
    TlsUnavailable {
        /// The endpoint type (`ssl` or `tls`).
        kind: &'static str,
    },
    /// The endpoint cannot do what was asked (`listen` with a stream factory
    /// on a `udp:` endpoint, `listen_udp` on a `tcp:` one).
    WrongKind {
        /// The endpoint type.
        kind: &'static str,
        /// What was asked.
        asked: &'static str,
    },
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::MissingType { description } => write!(
                f,
                "endpoint description {description:?} does not start with a type (tcp:, unix:, ...)"
            ),
            EndpointError::UnknownType { kind, known } => {
                write!(f, "unknown endpoint type {kind:?} (known: {known})")
            }
            EndpointError::DanglingEscape { description } => write!(
                f,
                "endpoint description {description:?} ends with a backslash that escapes nothing"
            ),
            EndpointError::Missing { kind, field } => {
                write!(f, "{kind}: endpoint is missing its {field} field")
            }
            EndpointError::BadValue {
                field,
                value,
                expected,
            } => write!(f, "bad {field} {value:?}: expected {expected}"),
            EndpointError::UnknownField { kind, field } => {
                write!(f, "{kind}: endpoint does not take a field named {field:?}")
            }
            EndpointError::TooManyFields { kind, extra } => write!(
                f,
                "{kind}: endpoint has more positional fields than it takes: {extra:?}"
            ),
            EndpointError::Repeated { field } => write!(f, "field {field:?} is given twice"),
            EndpointError::Unsupported { field, why } => {
                write!(f, "field {field:?} is not supported: {why}")
            }
            EndpointError::TlsUnavailable { kind } => write!(
                f,
                "{kind}: TLS endpoints need listen_ssl, not yet in this build"
            ),
            EndpointError::WrongKind { kind, asked } => {
                write!(f, "a {kind}: endpoint cannot {asked}")
            }
        }
    }
}

impl Error for EndpointError {}

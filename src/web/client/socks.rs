//! The client side of a SOCKS5 handshake (RFC 1928, with RFC 1929's user
//! name and password), as a push parser: [`Handshake::new`] gives the
//! greeting to send, [`Handshake::receive`] takes the proxy's bytes as they
//! come and says what to send next, to wait, or that the tunnel to the
//! origin is open. It does no I/O; the tunnel protocol feeds it.
//!
//! Every byte sequence is answered: a step, or a [`ProxyError`] naming what
//! the proxy did. A reply is at most 262 bytes (a 255-byte name); the
//! buffer holds at most one reply plus the bytes of one read.
//!
//! Public only with the `fuzzing` feature (for the `client_inputs` fuzz
//! target); not a stable API.

use std::net::IpAddr;

use crate::web::ProxyError;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASSWORD: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xff;
const CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_NAME: u8 = 3;
const ATYP_V6: u8 = 4;

/// The origin asked for in `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address (`socks5://`, or an IP literal in the URL).
    Ip(IpAddr),
    /// A name the proxy resolves (`socks5h://`).
    Name(String),
}

/// What the caller does after [`Handshake::receive`].
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Wait for more bytes.
    Wait,
    /// Send these bytes, then wait for more.
    Send(Vec<u8>),
    /// The proxy connected to the origin; the connection is the origin's.
    Done,
}

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The greeting is sent; waiting for the method choice (2 bytes).
    Method,
    /// The user name and password are sent; waiting for the status (2 bytes).
    Auth,
    /// `CONNECT` is sent; waiting for the reply (10 to 262 bytes).
    Reply,
    /// Done, or failed: nothing more is read.
    Over,
}

/// One SOCKS5 handshake; see the module documentation.
#[derive(Debug)]
pub struct Handshake {
    phase: Phase,
    /// The reply read so far in this phase.
    buf: Vec<u8>,
    /// The RFC 1929 request, when credentials are given.
    auth: Option<Vec<u8>>,
    /// The `CONNECT` request.
    connect: Vec<u8>,
    /// `host:port` of the origin, for errors.
    target: String,
}

impl Handshake {
    /// A handshake asking for `target`:`port` (`shown` is the origin as
    /// `host:port`, for errors), with `credentials` if any, and the
    /// greeting to send first. `Err` when a name is longer than SOCKS5
    /// allows (255 bytes).
    pub fn new(
        target: &Target,
        port: u16,
        shown: String,
        credentials: Option<(&str, &str)>,
    ) -> Result<(Handshake, Vec<u8>), ProxyError> {
        let mut connect = vec![VERSION, CONNECT, 0];
        match target {
            Target::Ip(IpAddr::V4(ip)) => {
                connect.push(ATYP_V4);
                connect.extend_from_slice(&ip.octets());
            }
            Target::Ip(IpAddr::V6(ip)) => {
                connect.push(ATYP_V6);
                connect.extend_from_slice(&ip.octets());
            }
            Target::Name(name) => {
                let len = u8::try_from(name.len()).map_err(|_| ProxyError::BadUrl {
                    reason: format!("the host name {shown} is longer than SOCKS5's 255 bytes"),
                })?;
                connect.push(ATYP_NAME);
                connect.push(len);
                connect.extend_from_slice(name.as_bytes());
            }
        }
        connect.extend_from_slice(&port.to_be_bytes());
        let auth = credentials.map(|(user, password)| {
            // Proxy::parse bounds both at 255 bytes; clamp anyway.
            let user = &user.as_bytes()[..user.len().min(255)];
            let password = &password.as_bytes()[..password.len().min(255)];
            let mut req = vec![1, user.len() as u8];
            req.extend_from_slice(user);
            req.push(password.len() as u8);
            req.extend_from_slice(password);
            req
        });
        let greeting = if auth.is_some() {
            vec![VERSION, 2, NO_AUTH, USER_PASSWORD]
        } else {
            vec![VERSION, 1, NO_AUTH]
        };
        let handshake = Handshake {
            phase: Phase::Method,
            buf: Vec::with_capacity(16),
            auth,
            connect,
            target: shown,
        };
        Ok((handshake, greeting))
    }

    /// What the handshake waits for, for an error when the proxy closes:
    /// `"before answering the SOCKS5 greeting"` and so on.
    pub fn waiting_for(&self) -> &'static str {
        match self.phase {
            Phase::Method => "before answering the SOCKS5 greeting",
            Phase::Auth => "before answering the SOCKS5 user name and password",
            Phase::Reply | Phase::Over => "before answering SOCKS5 CONNECT",
        }
    }

    /// Takes bytes from the proxy. After an `Err` or [`Step::Done`], the
    /// handshake reads nothing more (and says so with an error if fed).
    pub fn receive(&mut self, data: &[u8]) -> Result<Step, ProxyError> {
        if self.phase == Phase::Over {
            return Err(bad("bytes after the handshake ended"));
        }
        self.buf.extend_from_slice(data);
        let result = self.step();
        if !matches!(result, Ok(Step::Wait) | Ok(Step::Send(_))) {
            self.phase = Phase::Over;
        }
        result
    }

    fn step(&mut self) -> Result<Step, ProxyError> {
        let mut out = Vec::new();
        loop {
            let (phase, used) = match self.phase {
                Phase::Method => {
                    let [version, method, ..] = self.buf[..] else {
                        break;
                    };
                    if version != VERSION {
                        return Err(bad(format!(
                            "version {version} in the method choice, not 5"
                        )));
                    }
                    match (method, &self.auth) {
                        (NO_AUTH, _) => out.extend_from_slice(&self.connect),
                        (USER_PASSWORD, Some(auth)) => out.extend_from_slice(auth),
                        (NO_ACCEPTABLE, auth) => {
                            return Err(ProxyError::SocksNoAcceptableMethod {
                                offered_password: auth.is_some(),
                            })
                        }
                        (other, _) => {
                            return Err(bad(format!(
                                "the proxy chose authentication method {other}, \
                                 which was not offered"
                            )))
                        }
                    }
                    let next = if method == NO_AUTH {
                        Phase::Reply
                    } else {
                        Phase::Auth
                    };
                    (next, 2)
                }
                Phase::Auth => {
                    // RFC 1929 says version 1; some servers answer 5. Only
                    // the status matters, as in curl.
                    let [_, status, ..] = self.buf[..] else {
                        break;
                    };
                    if status != 0 {
                        return Err(ProxyError::SocksAuthFailed { status });
                    }
                    out.extend_from_slice(&self.connect);
                    (Phase::Reply, 2)
                }
                Phase::Reply => {
                    let [version, code, ..] = self.buf[..] else {
                        break;
                    };
                    if version != VERSION {
                        return Err(bad(format!("version {version} in the reply, not 5")));
                    }
                    if code != 0 {
                        return Err(ProxyError::SocksRefused {
                            target: self.target.clone(),
                            code,
                        });
                    }
                    let Some(&atyp) = self.buf.get(3) else {
                        break;
                    };
                    let address = match atyp {
                        ATYP_V4 => 4,
                        ATYP_V6 => 16,
                        ATYP_NAME => match self.buf.get(4) {
                            Some(&len) => 1 + usize::from(len),
                            None => break,
                        },
                        other => return Err(bad(format!("unknown address type {other}"))),
                    };
                    let len = 4 + address + 2;
                    if self.buf.len() < len {
                        break;
                    }
                    (Phase::Over, len)
                }
                Phase::Over => break,
            };
            self.buf.drain(..used);
            self.phase = phase;
            if phase == Phase::Over {
                if !self.buf.is_empty() {
                    return Err(bad(format!(
                        "{} bytes after the CONNECT reply, before the origin spoke",
                        self.buf.len()
                    )));
                }
                return Ok(Step::Done);
            }
            if !self.buf.is_empty() {
                // The proxy speaks only when spoken to.
                return Err(bad(format!(
                    "{} unexpected bytes after a reply",
                    self.buf.len()
                )));
            }
        }
        Ok(if out.is_empty() {
            Step::Wait
        } else {
            Step::Send(out)
        })
    }
}

fn bad(reason: impl Into<String>) -> ProxyError {
    ProxyError::SocksBadReply {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT_V4: &[u8] = &[5, 1, 0, 1, 127, 0, 0, 1, 0, 80];
    const OK_V4: &[u8] = &[5, 0, 0, 1, 10, 0, 0, 1, 4, 0];

    fn handshake(credentials: Option<(&str, &str)>) -> (Handshake, Vec<u8>) {
        let target = Target::Ip([127, 0, 0, 1].into());
        Handshake::new(&target, 80, "127.0.0.1:80".into(), credentials).unwrap()
    }

    #[test]
    fn requests() {
        let (_, greeting) = handshake(None);
        assert_eq!(greeting, [5, 1, 0]);
        let (_, greeting) = handshake(Some(("u", "p")));
        assert_eq!(greeting, [5, 2, 0, 2]);
        let target = Target::Name("localhost".into());
        let (mut h, _) = Handshake::new(&target, 443, "localhost:443".into(), None).unwrap();
        let mut want = vec![5, 1, 0, 3, 9];
        want.extend_from_slice(b"localhost");
        want.extend_from_slice(&[1, 187]);
        assert_eq!(h.receive(&[5, 0]).unwrap(), Step::Send(want));
        let v6 = Target::Ip("::1".parse().unwrap());
        let (mut h, _) = Handshake::new(&v6, 1, "[::1]:1".into(), None).unwrap();
        let Step::Send(req) = h.receive(&[5, 0]).unwrap() else {
            panic!("no CONNECT");
        };
        assert_eq!((req[3], req.len()), (4, 4 + 16 + 2));
        let long = Target::Name("a".repeat(256));
        assert!(Handshake::new(&long, 1, "long".into(), None).is_err());
    }

    #[test]
    fn replies() {
        // Each chunk's step (W wait, S send, D done), or part of the error.
        type Want = Result<&'static str, &'static str>;
        type Credentials = Option<(&'static str, &'static str)>;
        const OK_V4_X: &[u8] = &[5, 0, 0, 1, 10, 0, 0, 1, 4, 0, b'x'];
        let user = Some(("u", "p"));
        let table: &[(Credentials, &[&[u8]], Want)] = &[
            // The whole exchange, no authentication.
            (None, &[&[5, 0], OK_V4], Ok("SD")),
            (None, &[&[5], &[0], &[5, 0, 0], &[1, 1, 2, 3, 4, 0], &[80]], Ok("WSWWD")),
            (None, &[&[5, 0], &[5, 0, 0, 3, 2, b'a']], Ok("SW")),
            (None, &[&[5, 0], &[5, 0, 0, 3, 1, b'a', 0, 80]], Ok("SD")),
            (None, &[&[5, 0], &[5, 0, 0, 3, 0, 0, 80]], Ok("SD")),
            (None, &[&[5, 0], &[5, 0, 0, 4], &[0; 18]], Ok("SWD")),
            // Refusals with their RFC 1928 meaning, before the address.
            (
                None,
                &[&[5, 0], &[5, 5]],
                Err("SOCKS5 CONNECT 127.0.0.1:80 refused: connection refused by destination host (code 5)"),
            ),
            (None, &[&[5, 0], &[5, 1, 0, 1]], Err("general SOCKS server failure")),
            (None, &[&[5, 0], &[5, 2]], Err("not allowed by ruleset")),
            (None, &[&[5, 0], &[5, 3]], Err("network unreachable")),
            (None, &[&[5, 0], &[5, 4]], Err("host unreachable")),
            (None, &[&[5, 0], &[5, 6]], Err("TTL expired")),
            (None, &[&[5, 0], &[5, 7]], Err("command not supported")),
            (None, &[&[5, 0], &[5, 8]], Err("address type not supported")),
            (None, &[&[5, 0], &[5, 200]], Err("unassigned reply code (code 200)")),
            // Authentication.
            (None, &[&[5, 0xff]], Err("none; it may want a user name")),
            (user, &[&[5, 0xff]], Err("none, user name and password")),
            (None, &[&[5, 2]], Err("method 2, which was not offered")),
            (user, &[&[5, 1]], Err("method 1")),
            (user, &[&[5, 2], &[1, 1]], Err("refused the user name and password (status 1)")),
            (user, &[&[5, 2], &[1, 0], OK_V4], Ok("SSD")),
            (user, &[&[5, 0], OK_V4], Ok("SD")),
            (user, &[&[5, 2], &[5, 0]], Ok("SS")),
            // Garbage.
            (None, &[b"HTTP/1.1 400 Bad Request\r\n"], Err("version 72")),
            (None, &[&[4, 0]], Err("version 4 in the method choice")),
            (None, &[&[5, 0], &[4, 0]], Err("version 4 in the reply")),
            (None, &[&[5, 0], &[5, 0, 0, 9]], Err("unknown address type 9")),
            (None, &[&[5, 0, 5]], Err("1 unexpected bytes")),
            (user, &[&[5, 2], &[1, 0, 0]], Err("1 unexpected bytes")),
            (None, &[&[5, 0], OK_V4_X], Err("1 bytes after the CONNECT reply")),
            (None, &[&[5, 0], OK_V4, &[1]], Err("after the handshake ended")),
            (None, &[&[5, 0], &[5, 5], &[0]], Err("code 5")),
        ];
        for (credentials, chunks, want) in table {
            let (mut h, _) = handshake(*credentials);
            let mut got = String::new();
            let mut error = None;
            for chunk in *chunks {
                match h.receive(chunk) {
                    Ok(Step::Wait) => got.push('W'),
                    Ok(Step::Send(_)) => got.push('S'),
                    Ok(Step::Done) => got.push('D'),
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            match (error, want) {
                (None, Ok(steps)) => assert_eq!(got, *steps, "{chunks:?}"),
                (Some(e), Err(part)) => assert!(e.contains(part), "{chunks:?}: {e}"),
                (error, want) => panic!("{chunks:?}: got {got} {error:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn exchanges() {
        let (mut h, _) = handshake(Some(("u", "p")));
        assert_eq!(
            h.receive(&[5, 2]).unwrap(),
            Step::Send(vec![1, 1, b'u', 1, b'p'])
        );
        assert_eq!(h.receive(&[1, 0]).unwrap(), Step::Send(CONNECT_V4.to_vec()));
        assert_eq!(h.waiting_for(), "before answering SOCKS5 CONNECT");
        for byte in &OK_V4[..OK_V4.len() - 1] {
            assert_eq!(h.receive(&[*byte]).unwrap(), Step::Wait);
        }
        assert_eq!(h.receive(&OK_V4[OK_V4.len() - 1..]).unwrap(), Step::Done);
    }

    /// Every short input, split every way it can be in two, is answered
    /// without a panic, and the buffer stays bounded.
    #[test]
    fn any_bytes() {
        let mut seed = 0x2545_f491_u32;
        for _ in 0..2000 {
            let len = (seed % 24) as usize;
            let mut data = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                // Mostly plausible bytes, so the parser gets deep.
                data.push(match seed % 4 {
                    0 => 5,
                    1 => 0,
                    2 => (seed >> 8) as u8 % 5,
                    _ => (seed >> 8) as u8,
                });
            }
            check_any(&data);
        }
    }

    /// Feeds `data` in two parts, with and
    /// without credentials; never panics and keeps at most one reply.
    fn check_any(data: &[u8]) {
        for credentials in [None, Some(("u", "p"))] {
            let (mut h, _) = handshake(credentials);
            let cut = data
                .first()
                .map_or(0, |b| usize::from(*b) % (data.len() + 1));
            for part in [&data[..cut], &data[cut..]] {
                let _ = h.receive(part);
                assert!(h.buf.len() <= data.len());
            }
        }
    }
}

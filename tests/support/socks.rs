//! SOCKS5 proxies for the SOCKS tests: a real `microsocks` run in the
//! foreground on a free loopback port, and a fake SOCKS5 server on a std
//! thread that keeps the `CONNECT` request it gets and then answers it
//! badly on purpose.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A `microsocks` on 127.0.0.1, killed (by its pid) when dropped.
pub struct Microsocks {
    pub port: u16,
    child: Child,
}

impl Microsocks {
    /// Starts it, with `user:password` authentication required when given,
    /// or `None` when `microsocks` is not installed.
    pub fn start(credentials: Option<(&str, &str)>) -> Option<Microsocks> {
        let binary = ["/usr/bin/microsocks", "/usr/local/bin/microsocks"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut command = Command::new(binary);
        command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((user, password)) = credentials {
            command.args(["-u", user, "-P", password]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn microsocks");
        let proxy = Microsocks { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "microsocks did not start listening"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Some(proxy)
    }
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the fake SOCKS5 server does once it has read `CONNECT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Reply code `n` (a failure): `5` is "connection refused".
    Code(u8),
    /// Bytes that are not SOCKS5.
    Garbage,
    /// The first three bytes of a success reply, then close.
    ShortThenClose,
    /// Nothing, the connection held open.
    Silent,
}

/// A fake SOCKS5 server on 127.0.0.1 that accepts no authentication,
/// keeps each `CONNECT` request (from its version byte to its port) and
/// answers it as told. Its thread ends after 30 s at the latest.
pub struct FakeSocks {
    pub addr: SocketAddr,
    /// Every `CONNECT` request received, as sent.
    pub requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FakeSocks {
    pub fn start(answer: Answer) -> FakeSocks {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let r = requests.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let r = r.clone();
                thread::spawn(move || {
                    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
                    serve(&mut client, answer, &r);
                    if answer == Answer::Silent {
                        let mut sink = [0; 64];
                        while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
                    }
                });
            }
        });
        FakeSocks { addr, requests }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads the greeting, says "no authentication", reads `CONNECT`, keeps it
/// in `requests` (before answering, so a client that got the answer finds
/// it there), answers; `None` if the client went away.
fn serve(client: &mut TcpStream, answer: Answer, requests: &Mutex<Vec<Vec<u8>>>) -> Option<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).ok()?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).ok()?;
    client.write_all(&[5, 0]).ok()?;
    let mut request = vec![0u8; 4];
    client.read_exact(&mut request).ok()?;
    let address = match request[3] {
        1 => 4,
        4 => 16,
        _ => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).ok()?;
            request.push(len[0]);
            usize::from(len[0])
        }
    };
    let mut rest = vec![0u8; address + 2];
    client.read_exact(&mut rest).ok()?;
    request.extend_from_slice(&rest);
    requests.lock().unwrap().push(request);
    let reply: &[u8] = match answer {
        Answer::Code(n) => &[5, n, 0, 1, 0, 0, 0, 0, 0, 0],
        Answer::Garbage => b"HTTP/1.1 400 Bad Request\r\n\r\n",
        Answer::ShortThenClose => &[5, 0, 0],
        Answer::Silent => &[],
    };
    client.write_all(reply).ok()
}

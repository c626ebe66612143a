//! HTTP proxies for the proxy tests: a small forward proxy on std threads
//! (absolute-form requests and `CONNECT` tunnels) that keeps every request
//! head it gets and can misbehave on purpose, and a real `tinyproxy` run in
//! the foreground from a config in a temporary directory.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the test proxy does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards absolute-form requests and opens `CONNECT` tunnels.
    Forward,
    /// Answers everything with 407 Proxy Authentication Required.
    Refuse407,
    /// Answers `CONNECT` with 200, then closes the connection.
    AcceptThenDrop,
    /// Reads the request, then closes without a word.
    CloseAtOnce,
    /// Answers with bytes that are not HTTP.
    Garbage,
    /// Answers with a status line and headers that never end.
    EndlessHead,
    /// Reads the request and never answers.
    Silent,
}

/// A forward proxy on 127.0.0.1; stops accepting when dropped.
pub struct TestProxy {
    pub addr: SocketAddr,
    /// Every request head received, as sent.
    pub heads: Arc<Mutex<Vec<String>>>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TestProxy {
    pub fn start(mode: Mode) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let connections: Arc<AtomicUsize> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (h, c, s) = (heads.clone(), connections.clone(), stop.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let heads = h.clone();
                thread::spawn(move || {
                    let _ = serve(client, mode, &heads);
                });
            }
        });
        TestProxy {
            addr,
            heads,
            connections,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

/// Reads one request head (to the blank line), at most 64 KiB; `None` at EOF.
fn read_head(reader: &mut BufReader<TcpStream>) -> io::Result<Option<String>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        head.push_str(&line);
        if line == "\r\n" {
            return Ok(Some(head));
        }
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("request head too large"));
        }
    }
}

fn serve(client: TcpStream, mode: Mode, heads: &Mutex<Vec<String>>) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    while let Some(head) = read_head(&mut reader)? {
        heads.lock().unwrap().push(head.clone());
        let mut parts = head.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        match mode {
            Mode::Refuse407 => {
                client.write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
                )?;
                continue;
            }
            Mode::CloseAtOnce => return Ok(()),
            Mode::Garbage => {
                client.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")?;
                return Ok(());
            }
            Mode::EndlessHead => {
                client.write_all(b"HTTP/1.1 200 OK\r\n")?;
                for i in 0..10_000 {
                    if client
                        .write_all(format!("X-Filler-{i}: {}\r\n", "y".repeat(60)).as_bytes())
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                return Ok(());
            }
            Mode::Silent => {
                thread::sleep(Duration::from_secs(10));
                return Ok(());
            }
            Mode::AcceptThenDrop if method == "CONNECT" => {
                client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
                return Ok(());
            }
            Mode::AcceptThenDrop | Mode::Forward => {}
        }
        if method == "CONNECT" {
            let origin = TcpStream::connect(resolve(target)?)?;
            client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            return splice(reader, client, origin);
        }
        forward(&head, target, &mut reader, &mut client)?;
    }
    Ok(())
}

/// `host:port` with `localhost` taken as 127.0.0.1.
fn resolve(authority: &str) -> io::Result<SocketAddr> {
    let authority = authority.replace("localhost", "127.0.0.1");
    authority
        .parse()
        .map_err(|_| io::Error::other(format!("cannot resolve {authority}")))
}

/// Forwards one absolute-form request (bodyless) on a new origin
/// connection and copies the response back, without the origin's
/// `Connection` field, so the client may keep its proxy connection.
fn forward(
    head: &str,
    target: &str,
    _reader: &mut BufReader<TcpStream>,
    client: &mut TcpStream,
) -> io::Result<()> {
    let rest = target
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::other("not absolute form"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let method = first.split(' ').next().unwrap_or("GET");
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        // A proxy keeps its own credentials and hop-by-hop fields.
        if name == "proxy-authorization" || name == "connection" || name == "proxy-connection" {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let origin = TcpStream::connect(resolve(authority)?)?;
    origin.set_read_timeout(Some(Duration::from_secs(20)))?;
    (&origin).write_all(out.as_bytes())?;
    // The response: its head, then a Content-Length body (the test origins
    // always send one).
    let mut from_origin = BufReader::new(origin);
    let head = read_head(&mut from_origin)?.ok_or_else(|| io::Error::other("no response"))?;
    let length: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    from_origin.read_exact(&mut body)?;
    let kept: String = head
        .split_inclusive("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    client.write_all(kept.as_bytes())?;
    client.write_all(&body)?;
    Ok(())
}

/// Copies bytes both ways until either side closes.
fn splice(reader: BufReader<TcpStream>, client: TcpStream, origin: TcpStream) -> io::Result<()> {
    let mut from_origin = origin.try_clone()?;
    let mut to_client = client.try_clone()?;
    let back = thread::spawn(move || {
        let _ = io::copy(&mut from_origin, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let mut reader = reader;
    let mut to_origin = origin;
    // Bytes the head reader took past the head first.
    let buffered = reader.buffer().to_vec();
    to_origin.write_all(&buffered)?;
    reader.consume(buffered.len());
    let _ = io::copy(reader.get_mut(), &mut to_origin);
    let _ = to_origin.shutdown(Shutdown::Both);
    let _ = back.join();
    drop(client);
    Ok(())
}

/// A `tinyproxy` in the foreground on a free loopback port, with its config,
/// log and pid file in a temporary directory; killed by pid when dropped.
pub struct Tinyproxy {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Tinyproxy {
    /// Starts it, or `None` when `tinyproxy` is not installed.
    pub fn start() -> Option<Tinyproxy> {
        let binary = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir =
            std::env::temp_dir().join(format!("twined-tinyproxy-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("tinyproxy.conf");
        // No ConnectPort line: CONNECT to any port is allowed.
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\n\
                 Allow 127.0.0.1\nLogLevel Info\nLogFile \"{log}\"\nPidFile \"{pid}\"\n\
                 DisableViaHeader Yes\n",
                log = dir.join("tinyproxy.log").display(),
                pid = dir.join("tinyproxy.pid").display(),
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tinyproxy");
        let proxy = Tinyproxy { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not start listening"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Some(proxy)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// tinyproxy's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tinyproxy.log")).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

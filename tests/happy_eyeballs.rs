//! Happy Eyeballs (RFC 8305) against a real network: a name that resolves
//! to an IPv6 address that never answers a SYN and to 127.0.0.1, where a
//! server listens.
//!
//! The test needs root: it makes a network namespace with its loopback up,
//! `fd00::1` on it, an ip6tables rule dropping TCP to the test port, and a
//! hosts file (`ip netns exec` mounts `/etc/netns/NAME/hosts` over
//! `/etc/hosts`) mapping a test name to both addresses. It then runs its own
//! test binary again inside the namespace, where the checks run. A guard
//! removes the namespace and its files, whatever happens.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::wait;
use twined::protocol::Protocol;
use twined::reactor::{self, ConnectError, ConnectOptions};
use twined::web::client::{get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions};
use twined::web::server::{Request, Response, Site};

/// Set in the environment of the run inside the namespace.
const INSIDE: &str = "TWINED_HAPPY_EYEBALLS_INSIDE";
/// The port the server listens on inside the namespace (a fresh namespace
/// has every port free).
const PORT: u16 = 18443;
/// The name mapped to `fd00::1` and `127.0.0.1`.
const NAME: &str = "dual.happy-eyeballs.test";
/// The name mapped to `fd00::1` and `fd00::2`, both silent.
const SILENT: &str = "silent.happy-eyeballs.test";

/// Removes the namespace and its hosts file when dropped.
struct Namespace {
    name: String,
    etc: PathBuf,
}

impl Namespace {
    fn create() -> Namespace {
        let name = format!("twined-he-{}", std::process::id());
        let etc = PathBuf::from("/etc/netns").join(&name);
        let ns = Namespace { name, etc };
        ns.ip(&["netns", "add", &ns.name]);
        ns.inside(&["ip", "link", "set", "lo", "up"]);
        ns.inside(&["ip", "-6", "addr", "add", "fd00::1/128", "dev", "lo"]);
        ns.inside(&["ip", "-6", "addr", "add", "fd00::2/128", "dev", "lo"]);
        ns.inside(&[
            "ip6tables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &PORT.to_string(),
            "-j",
            "DROP",
        ]);
        std::fs::create_dir_all(&ns.etc).expect("create /etc/netns/NAME");
        let hosts = format!(
            "127.0.0.1 localhost\n::1 localhost\nfd00::1 {NAME}\n127.0.0.1 {NAME}\n\
             fd00::1 {SILENT}\nfd00::2 {SILENT}\n"
        );
        std::fs::write(ns.etc.join("hosts"), hosts).expect("write the namespace's hosts file");
        ns
    }

    fn ip(&self, args: &[&str]) {
        run("ip", args);
    }

    fn inside(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install iproute2 and iptables): {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed (the test needs root): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every address refusing: the error says so (not "no address").
#[test]
fn every_address_refused_is_a_refusal() {
    // A port bound but not listening, on both loopback addresses: connects
    // to it are refused, and no other test can take it meanwhile.
    use rustix::net::{bind, getsockname, socket, AddressFamily, SocketType};
    let v4 = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&v4, &"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap()).unwrap();
    let port = std::net::SocketAddr::try_from(getsockname(&v4).unwrap())
        .unwrap()
        .port();
    let v6 = socket(AddressFamily::INET6, SocketType::STREAM, None).unwrap();
    let v6_bound = bind(
        &v6,
        &std::net::SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port)),
    );
    // A machine without IPv6 loopback refuses ::1 at once all the same.
    let _ = v6_bound;
    let failure = wait(reactor::connect_protocol_with(
        "localhost",
        port,
        Idle,
        ConnectOptions::default(),
    ))
    .unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref::<ConnectError>(),
            Some(ConnectError::Refused { .. })
        ),
        "{failure}"
    );
}

#[test]
fn a_silent_ipv6_address_does_not_hold_up_the_ipv4_one() {
    if std::env::var_os(INSIDE).is_some() {
        inside_the_namespace();
        return;
    }
    let ns = Namespace::create();
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(exe)
        .args([
            "--exact",
            "a_silent_ipv6_address_does_not_hold_up_the_ipv4_one",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .output()
        .expect("run the test inside the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the run inside the namespace failed:\n{stdout}\n{stderr}"
    );
}

struct Idle;
impl Protocol for Idle {
    fn data_received(&mut self, _data: &[u8]) {}
}

/// Runs inside the namespace: `NAME` resolves to `[fd00::1, 127.0.0.1]`,
/// SYNs to `fd00::1` are dropped.
fn inside_the_namespace() {
    let addrs = wait(twined::threads::resolve(NAME, PORT)).expect("resolve the test name");
    assert!(
        addrs.iter().any(|a| a.is_ipv6()) && addrs.iter().any(|a| a.is_ipv4()),
        "the hosts file gave {addrs:?}"
    );
    let site = Site::new(|_req: Request| Response::new(200).body(b"v4".to_vec()));
    let port = reactor::listen_tcp(format!("127.0.0.1:{PORT}"), site).expect("listen");

    // Without the race (an attempt delay longer than the timeout), the
    // silent IPv6 address, tried first, holds the connect until it times
    // out: the address order and the blackhole are what the test thinks.
    let slow = ConnectOptions {
        timeout: Some(Duration::from_secs(1)),
        attempt_delay: Duration::from_secs(3600),
        ..ConnectOptions::default()
    };
    let failure = wait(reactor::connect_protocol_with(NAME, PORT, Idle, slow)).unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref::<ConnectError>(),
            Some(ConnectError::TimedOut { .. })
        ),
        "{failure}"
    );

    // With the default 250 ms delay, 127.0.0.1 starts while fd00::1 still
    // waits, and wins long before the 10 s connect timeout.
    let transport = wait(reactor::connect_protocol_with(
        NAME,
        PORT,
        Idle,
        ConnectOptions {
            timeout: Some(Duration::from_secs(10)),
            ..ConnectOptions::default()
        },
    ))
    .expect("Happy Eyeballs connects through 127.0.0.1");
    assert!(transport.peer().expect("peer").is_ipv4());
    transport.abort_connection();

    // The same through the web client: a fetch by name succeeds.
    let agent = Agent::with_options(
        ConnectionPool::new(),
        AgentOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            ..AgentOptions::default()
        },
    );
    let body = wait(get_page_with(
        format!("http://{NAME}:{PORT}/"),
        PageOptions {
            agent: Some(agent.clone()),
            ..PageOptions::default()
        },
    ))
    .expect("the fetch succeeds");
    assert_eq!(body, b"v4");
    agent.pool().close_idle();
    port.stop_listening();

    every_racing_socket_closes_on_cancel_and_timeout();
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Two silent addresses raced: cancelling, or the overall timeout, closes
/// both sockets.
fn every_racing_socket_closes_on_cancel_and_timeout() {
    let racing = || ConnectOptions {
        timeout: Some(Duration::from_secs(10)),
        attempt_delay: Duration::from_millis(20),
        ..ConnectOptions::default()
    };
    let before = open_fds();
    let d = reactor::connect_protocol_with(SILENT, PORT, Idle, racing());
    let during = std::rc::Rc::new(std::cell::Cell::new(0));
    let seen = during.clone();
    // Both attempts are racing well after two attempt delays.
    reactor::call_later(Duration::from_millis(300), move || {
        seen.set(open_fds());
        d.cancel();
    });
    let d2 = reactor::connect_protocol_with(SILENT, PORT, Idle, racing());
    reactor::call_later(Duration::from_millis(400), move || {
        d2.cancel();
        reactor::stop().unwrap();
    });
    support::run_bounded(Duration::from_secs(5));
    assert!(
        during.get() >= before + 4,
        "two connects racing two sockets each: {} fds, {before} before",
        during.get()
    );
    assert!(open_fds() <= before, "cancelling closed every socket");

    let d = reactor::connect_protocol_with(
        SILENT,
        PORT,
        Idle,
        ConnectOptions {
            timeout: Some(Duration::from_millis(300)),
            ..racing()
        },
    );
    let failure = wait(d).unwrap_err();
    assert!(
        matches!(
            failure.downcast_ref::<ConnectError>(),
            Some(ConnectError::TimedOut { .. })
        ),
        "{failure}"
    );
    assert!(open_fds() <= before, "the timeout closed every socket");
}

//! The Redis client against a real `redis-server` started by each test
//! (txredisapi's test suite also runs against a live server).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use redis_support::{redis_error, RedisServer};
use support::wait;
use twined::defer::{gather_results, DeferredList, Failure, TimeoutError};
use twined::protocol::{Protocol, Transport};
use twined::reactor;
use twined::redis::{Client, ClientOptions, ErrorKind, RedisError, Value};
use twined::task;

fn client(server: &RedisServer) -> Client {
    Client::new(&server.url(0)).unwrap()
}

#[test]
fn commands_and_reply_kinds() {
    let server = RedisServer::start();
    let c = wait(Client::connect(&server.url(0))).unwrap();
    assert!(c.connected_now());
    assert_eq!(
        wait(c.command(["SET", "k", "v\r\n\0"])).unwrap(),
        Value::Status("OK".into())
    );
    assert_eq!(
        wait(c.command(["GET", "k"])).unwrap(),
        Value::Data(b"v\r\n\0".to_vec())
    );
    assert_eq!(wait(c.command(["GET", "missing"])).unwrap(), Value::Nil);
    assert_eq!(
        wait(c.command(["INCRBY", "n", "-5"])).unwrap(),
        Value::Int(-5)
    );
    assert_eq!(
        wait(c.command(vec![b"RPUSH".to_vec(), b"l".to_vec(), vec![0xff], vec![]])).unwrap(),
        Value::Int(2)
    );
    assert_eq!(
        wait(c.command(["LRANGE", "l", "0", "-1"])).unwrap(),
        Value::Array(vec![Value::Data(vec![0xff]), Value::Data(vec![])])
    );
    wait(c.ping()).unwrap();
}

/// Pipelining: 10,000 commands issued in one reactor turn on one
/// connection, the replies matched to them in order.
#[test]
fn pipelining_ten_thousand_commands() {
    let server = RedisServer::start();
    let c = client(&server);
    let ds: Vec<_> = (0..10_000)
        .map(|_| c.command(["INCR", "counter"]))
        .collect();
    assert_eq!(c.pending(), 10_000);
    let replies = wait(gather_results(ds)).unwrap();
    let expected: Vec<Value> = (1..=10_000).map(Value::Int).collect();
    assert_eq!(replies, expected);
    assert_eq!(c.pending(), 0);
    assert_eq!(server.admin(&["GET", "counter"]), "$5");
}

/// An error reply is a typed Failure; the connection stays usable and the
/// commands around it get their own replies.
#[test]
fn error_reply_is_a_failure() {
    let server = RedisServer::start();
    let c = client(&server);
    let before = c.command(["SET", "s", "x"]);
    let bad = c.command(["NOSUCHCOMMAND", "a"]);
    let wrong = c.command(["LPUSH", "s", "y"]);
    let after = c.command(["GET", "s"]);
    let results = wait(DeferredList::new(vec![before, bad, wrong, after])).unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &Value::Status("OK".into()));
    let bad = results[1].as_ref().unwrap_err();
    match redis_error(bad) {
        RedisError::Server { kind, message } => {
            assert_eq!(kind, &ErrorKind::Err);
            assert!(message.contains("unknown command"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        bad.to_string().starts_with("redis error reply: ERR"),
        "{bad}"
    );
    let wrong = results[2].as_ref().unwrap_err();
    assert_eq!(
        redis_error(wrong).server_kind(),
        Some(&ErrorKind::WrongType)
    );
    assert_eq!(results[3].as_ref().unwrap(), &Value::Data(b"x".to_vec()));
    // An empty command never reaches the server.
    let empty = wait(c.command(Vec::<&str>::new())).unwrap_err();
    assert!(
        empty.to_string().contains("needs at least its name"),
        "{empty}"
    );
}

/// The server dies with commands in flight (one blocked, many pipelined
/// behind it): every one errbacks with `ConnectionLost`; none hangs. After
/// the restart, new commands reconnect.
#[test]
fn restart_mid_pipeline_errbacks_in_flight_then_reconnects() {
    let server = RedisServer::start();
    let c = client(&server);
    wait(c.ping()).unwrap();
    let blocked = c.brpop(["empty"], Duration::from_secs(20));
    let behind: Vec<_> = (0..1000)
        .map(|i| c.command(["SET", "k", &i.to_string()]))
        .collect();
    let server = Rc::new(RefCell::new(Some(server)));
    {
        let server = server.clone();
        reactor::call_later(Duration::from_millis(200), move || {
            server.borrow_mut().as_mut().unwrap().kill();
        });
    }
    let blocked = wait(blocked).unwrap_err();
    match redis_error(&blocked) {
        RedisError::ConnectionLost { reason } => {
            assert!(!reason.to_string().is_empty());
        }
        other => panic!("{other:?}"),
    }
    let results = wait(DeferredList::new(behind)).unwrap();
    assert_eq!(results.len(), 1000);
    for r in results {
        let f = r.unwrap_err();
        assert!(
            matches!(redis_error(&f), RedisError::ConnectionLost { .. }),
            "{f}"
        );
    }
    assert!(!c.connected_now());

    // While the server is down, a command fails to connect (no hang).
    let refused = wait(c.ping()).unwrap_err();
    match redis_error(&refused) {
        RedisError::Connect {
            server: addr,
            reason,
        } => {
            assert!(addr.starts_with("127.0.0.1:"), "{addr}");
            assert!(reason.to_string().contains("refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    // Back up: the next commands reconnect (after the backoff) and run.
    let mut s = server.borrow_mut().take().unwrap();
    s.restart();
    wait(c.ping()).unwrap();
    assert_eq!(
        wait(c.command(["SET", "k", "again"])).unwrap(),
        Value::Status("OK".into())
    );
    assert!(c.connected_now());
}

/// Commands issued while connecting (or backing off) are queued, not lost,
/// and sent once logged in.
#[test]
fn commands_queue_while_connecting() {
    let server = RedisServer::start();
    let c = client(&server);
    let ds: Vec<_> = (0..100)
        .map(|i| c.command(["RPUSH", "q", &i.to_string()]))
        .collect();
    assert!(!c.connected_now());
    let lens = wait(gather_results(ds)).unwrap();
    assert_eq!(lens.last(), Some(&Value::Int(100)));
}

#[test]
fn auth_and_select_from_the_url_on_every_connection() {
    let mut server = RedisServer::start();
    let port = server.port();
    let url = format!("redis://:s%40cret@127.0.0.1:{port}/3");
    server.admin(&["CONFIG", "SET", "requirepass", "s@cret"]);
    let c = Client::new(&url).unwrap();
    assert_eq!(
        wait(c.command(["SET", "in3", "yes"])).unwrap(),
        Value::Status("OK".into())
    );
    // SELECT 3 took effect: db 0 does not have the key.
    let other = Client::new(&format!("redis://:s%40cret@127.0.0.1:{port}/0")).unwrap();
    assert_eq!(wait(other.command(["GET", "in3"])).unwrap(), Value::Nil);
    assert_eq!(
        wait(c.command(["GET", "in3"])).unwrap(),
        Value::Data(b"yes".to_vec())
    );

    // After a restart (same password set again), AUTH and SELECT are sent again.
    server.restart();
    server.admin(&["CONFIG", "SET", "requirepass", "s@cret"]);
    let lost = wait(c.command(["GET", "in3"]));
    if let Err(f) = &lost {
        assert!(
            matches!(redis_error(f), RedisError::ConnectionLost { .. }),
            "{f}"
        );
    }
    let put = c.command(["SET", "in3", "again"]);
    assert_eq!(wait(put).unwrap(), Value::Status("OK".into()));
    assert_eq!(
        wait(other.command(["GET", "in3"])).unwrap_or(Value::Nil),
        Value::Nil
    );

    // A wrong password fails the handshake with a typed error.
    let bad = Client::new(&format!("redis://:wrong@127.0.0.1:{port}/0")).unwrap();
    let f = wait(bad.ping()).unwrap_err();
    match redis_error(&f) {
        RedisError::Handshake { command, kind, .. } => {
            assert_eq!(*command, "AUTH");
            assert_eq!(kind, &ErrorKind::WrongPass);
        }
        other => panic!("{other:?}"),
    }
    // No password at all: the server says NOAUTH, as a Server error.
    let none = Client::new(&server.url(0)).unwrap();
    let f = wait(none.ping()).unwrap_err();
    assert_eq!(redis_error(&f).server_kind(), Some(&ErrorKind::NoAuth));
}

#[test]
fn acl_user_and_password() {
    let server = RedisServer::start();
    server.admin(&["ACL", "SETUSER", "worker", "on", ">pw", "~*", "+@all"]);
    let c = Client::new(&format!("redis://worker:pw@127.0.0.1:{}/0", server.port())).unwrap();
    assert_eq!(
        wait(c.command(["ACL", "WHOAMI"])).unwrap(),
        Value::Data(b"worker".to_vec())
    );
}

#[test]
fn bad_urls_are_typed_errors() {
    for url in [
        "",
        "http://127.0.0.1:6379",
        "redis://127.0.0.1/notadb",
        "rediss://127.0.0.1",
    ] {
        let e = Client::new(url)
            .err()
            .unwrap_or_else(|| panic!("{url} accepted"));
        assert!(matches!(e, RedisError::BadUrl { .. }), "{url}: {e}");
    }
    let f = wait(Client::connect("redis://user:topsecret@127.0.0.1:1/x")).unwrap_err();
    assert!(matches!(redis_error(&f), RedisError::BadUrl { .. }));
    assert!(!f.to_string().contains("topsecret"), "{f}");
}

/// The frontier's commands: a stream with a consumer group, acks, claims of
/// a dead consumer's entries, a set for de-duplication, a list.
#[test]
fn streams_sets_and_lists() {
    let server = RedisServer::start();
    let c = client(&server);
    assert!(wait(c.xgroup_create("frontier", "crawlers", "0")).unwrap());
    assert!(
        !wait(c.xgroup_create("frontier", "crawlers", "0")).unwrap(),
        "BUSYGROUP is false"
    );
    let ids: Vec<String> = (0..5)
        .map(|i| wait(c.xadd("frontier", [("url", format!("https://example.org/{i}"))])).unwrap())
        .collect();
    let got = wait(c.xreadgroup("crawlers", "dead", "frontier", 3, None)).unwrap();
    assert_eq!(
        got.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        ids[..3]
    );
    assert_eq!(got[1].field("url"), Some(&b"https://example.org/1"[..]));
    let rest = wait(c.xreadgroup(
        "crawlers",
        "alive",
        "frontier",
        10,
        Some(Duration::from_millis(50)),
    ))
    .unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(
        wait(c.xack("frontier", "crawlers", [&rest[0].id, &rest[1].id])).unwrap(),
        2
    );
    let none = wait(c.xreadgroup(
        "crawlers",
        "alive",
        "frontier",
        10,
        Some(Duration::from_millis(20)),
    ))
    .unwrap();
    assert!(none.is_empty());

    // "dead" never acked its 3 entries: "alive" claims them.
    let claim =
        wait(c.xautoclaim("frontier", "crawlers", "alive", Duration::ZERO, "0-0", 10)).unwrap();
    assert_eq!(claim.entries.len(), 3);
    assert_eq!(claim.next, "0-0");
    assert!(claim.deleted.is_empty());
    assert_eq!(
        wait(c.xack("frontier", "crawlers", ids[..3].to_vec())).unwrap(),
        3
    );

    // XREADGROUP on a missing group is a NOGROUP error.
    let f = wait(c.xreadgroup("nogroup", "x", "frontier", 1, None)).unwrap_err();
    assert_eq!(redis_error(&f).server_kind(), Some(&ErrorKind::NoGroup));

    assert_eq!(wait(c.sadd("seen", ["a"])).unwrap(), 1);
    assert_eq!(wait(c.sadd("seen", ["a", "b"])).unwrap(), 1);
    assert!(wait(c.sismember("seen", "b")).unwrap());
    assert!(!wait(c.sismember("seen", "z")).unwrap());

    assert_eq!(wait(c.lpush("jobs", ["1", "2"])).unwrap(), 2);
    assert_eq!(
        wait(c.brpop(["jobs"], Duration::from_secs(1))).unwrap(),
        Some((b"jobs".to_vec(), b"1".to_vec()))
    );
    assert_eq!(
        wait(c.brpop(["jobs"], Duration::from_secs(1))).unwrap(),
        Some((b"jobs".to_vec(), b"2".to_vec()))
    );
    assert_eq!(
        wait(c.brpop(["jobs"], Duration::from_millis(50))).unwrap(),
        None
    );

    // A typed helper given a reply of another shape says so.
    wait(c.command(["SET", "str", "x"])).unwrap();
    let f = wait(c.sismember("str", "x")).unwrap_err();
    assert_eq!(redis_error(&f).server_kind(), Some(&ErrorKind::WrongType));
}

/// A reply larger than `max_reply_size` closes the connection with a typed
/// error instead of buffering it; the client reconnects afterwards.
#[test]
fn reply_size_limit() {
    let server = RedisServer::start();
    let options = ClientOptions {
        max_reply_size: 1024,
        ..ClientOptions::default()
    };
    let c = Client::with_options(&server.url(0), options).unwrap();
    wait(c.command(["SET", "big", &"x".repeat(4096)])).unwrap();
    let f = wait(c.command(["GET", "big"])).unwrap_err();
    match redis_error(&f) {
        RedisError::ConnectionLost { reason } => {
            assert!(
                matches!(
                    reason.downcast_ref::<RedisError>(),
                    Some(RedisError::ReplyTooLarge { limit: 1024 })
                ),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        wait(c.command(["STRLEN", "big"])).unwrap(),
        Value::Int(4096)
    );
}

#[test]
fn pending_limit() {
    let server = RedisServer::start();
    let options = ClientOptions {
        max_pending: 10,
        ..ClientOptions::default()
    };
    let c = Client::with_options(&server.url(0), options).unwrap();
    let ok: Vec<_> = (0..10).map(|_| c.ping()).collect();
    let f = wait(c.ping()).unwrap_err();
    assert!(matches!(
        redis_error(&f),
        RedisError::TooManyPending { limit: 10 }
    ));
    wait(gather_results(ok)).unwrap();
    wait(c.ping()).unwrap();
}

#[test]
fn command_timeout() {
    let server = RedisServer::start();
    let options = ClientOptions {
        command_timeout: Some(Duration::from_millis(100)),
        ..ClientOptions::default()
    };
    let c = Client::with_options(&server.url(0), options).unwrap();
    let f = wait(c.brpop(["nothing"], Duration::from_millis(500))).unwrap_err();
    assert!(f.check::<TimeoutError>(), "{f:?}");
    // The connection is kept; the late reply (nil after 500 ms) is
    // discarded and the next command gets its own.
    wait(task::sleep(Duration::from_millis(600))).unwrap();
    assert_eq!(
        wait(c.command(["ECHO", "mine"])).unwrap(),
        Value::Data(b"mine".to_vec())
    );
}

#[test]
fn disconnect_fails_later_commands() {
    let server = RedisServer::start();
    let c = client(&server);
    wait(c.ping()).unwrap();
    c.disconnect();
    let f = wait(c.ping()).unwrap_err();
    assert!(matches!(redis_error(&f), RedisError::Closed));
}

/// A peer that is not Redis: bytes that are not RESP, or a reply nobody
/// asked for, close the connection with a protocol error.
struct Hostile {
    reply: &'static [u8],
    transport: Option<Transport>,
}

impl Protocol for Hostile {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
    fn data_received(&mut self, _data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(self.reply);
        }
    }
}

#[test]
fn malformed_replies_are_protocol_errors() {
    for reply in [
        &b"?not resp\r\n"[..],
        b":12x\r\n",
        b"$-7\r\n",
        &b"*1\r\n".repeat(100),
    ] {
        let reply: &'static [u8] = Box::leak(reply.to_vec().into_boxed_slice());
        let port = reactor::listen_tcp("127.0.0.1:0", move |_peer: SocketAddr| Hostile {
            reply,
            transport: None,
        })
        .unwrap();
        let c = Client::new(&format!("redis://127.0.0.1:{}", port.address().port())).unwrap();
        let results = wait(DeferredList::new(vec![
            c.command(["PING"]),
            c.command(["PING"]),
        ]))
        .unwrap();
        let failures: Vec<&Failure> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(!failures.is_empty(), "{reply:?}: {results:?}");
        for f in failures {
            match redis_error(f) {
                RedisError::ConnectionLost { reason } => assert!(
                    matches!(
                        reason.downcast_ref::<RedisError>(),
                        Some(RedisError::Protocol { .. })
                    ),
                    "{reply:?}: {reason}"
                ),
                other => panic!("{reply:?}: {other:?}"),
            }
        }
        port.stop_listening();
    }
}

#[test]
fn a_reply_to_no_command_closes_the_connection() {
    let port = reactor::listen_tcp("127.0.0.1:0", |_peer: SocketAddr| Hostile {
        reply: b"+PONG\r\n+EXTRA\r\n",
        transport: None,
    })
    .unwrap();
    let c = Client::new(&format!("redis://127.0.0.1:{}", port.address().port())).unwrap();
    assert_eq!(
        wait(c.command(["PING"])).unwrap(),
        Value::Status("PONG".into())
    );
    wait(task::sleep(Duration::from_millis(50))).unwrap();
    assert!(!c.connected_now(), "{c:?}");
    port.stop_listening();
}

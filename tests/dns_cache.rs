//! The DNS cache through the connect API and the web client: a host is
//! looked up once per TTL, not once per connection.

mod support;

use std::time::Duration;

use support::wait;
use twined::protocol::Protocol;
use twined::reactor::{self, ConnectOptions, DnsCache};
use twined::web::client::{
    get_page_with, Agent, AgentOptions, ConnectionPool, PageOptions, PoolOptions,
};
use twined::web::server::{Request, Response, Site};

struct Idle;
impl Protocol for Idle {
    fn data_received(&mut self, _data: &[u8]) {}
}

#[test]
fn connects_sharing_a_cache_look_the_name_up_once() {
    let port = reactor::listen_tcp("127.0.0.1:0", |_| Idle).unwrap();
    let n = port.address().port();
    let cache = DnsCache::new(Duration::from_secs(60));
    for _ in 0..3 {
        let options = ConnectOptions {
            dns: Some(cache.clone()),
            ..ConnectOptions::default()
        };
        let transport = wait(reactor::connect_protocol_with(
            "localhost",
            n,
            Idle,
            options,
        ))
        .expect("connects");
        transport.abort_connection();
    }
    assert_eq!(cache.lookups(), 1);
    assert_eq!(cache.len(), 1);
    port.stop_listening();
}

fn fetch_three_times(agent: &Agent, url: &str) {
    for _ in 0..3 {
        let body = wait(get_page_with(
            url,
            PageOptions {
                agent: Some(agent.clone()),
                ..PageOptions::default()
            },
        ))
        .expect("the fetch succeeds");
        assert_eq!(body, b"hi");
    }
}

#[test]
fn an_agent_without_keep_alive_looks_a_host_up_once_per_ttl() {
    let site = Site::new(|_req: Request| Response::new(200).body(b"hi".to_vec()));
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    let url = format!("http://localhost:{}/", port.address().port());
    let pool = || {
        ConnectionPool::with_options(PoolOptions {
            persistent: false,
            ..PoolOptions::default()
        })
    };
    let agent = Agent::with_options(pool(), AgentOptions::default());
    fetch_three_times(&agent, &url);
    let cache = agent.dns_cache().expect("on by default");
    assert_eq!(cache.options().ttl, Duration::from_secs(60));
    assert_eq!(cache.lookups(), 1, "three connections, one lookup");

    let uncached = Agent::with_options(
        pool(),
        AgentOptions {
            dns_ttl: None,
            ..AgentOptions::default()
        },
    );
    fetch_three_times(&uncached, &url);
    assert!(uncached.dns_cache().is_none());
    port.stop_listening();
}

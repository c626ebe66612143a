//! Twisted's classic `chatserver.py`: a line-based chat where the first line
//! a user sends is their name and every later line goes to every other user.
//!
//! `cargo run --example chat_server -- [PORT]` serves on 127.0.0.1:PORT
//! (default 8123) until Ctrl-C; try it with `nc 127.0.0.1 8123` from two
//! terminals. `cargo run --example chat_server -- --demo` serves on a free
//! port, has two scripted users chat, prints what each one saw, and exits.
//!
//! The bounds a public chat needs, each with its Twisted name: at most
//! `MAX_USERS` connections (`LimitTotalConnectionsFactory`), lines of at
//! most `MAX_LINE` bytes (`LineReceiver.MAX_LENGTH`), names of at most
//! `MAX_NAME` bytes, and a user silent for `IDLE` is disconnected
//! (`TimeoutMixin`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use twined::defer::{Deferred, Failure, Trigger};
use twined::protocol::basic::{LineConnection, LineHandler, LineReceiver, LineSender};
use twined::protocol::policies::{LimitTotalConnectionsFactory, Timeout};
use twined::protocol::Transport;
use twined::reactor;
use twined::task;

/// Connections served at once.
const MAX_USERS: usize = 100;
/// The longest line.
const MAX_LINE: usize = 1024;
/// The longest name.
const MAX_NAME: usize = 32;
/// Silence after which a user is disconnected.
const IDLE: Duration = Duration::from_secs(600);

/// The users who chose a name, and how to reach them.
type Users = Rc<RefCell<HashMap<String, LineSender>>>;

/// One user's connection (Twisted's `Chat(LineReceiver)`).
struct Chat {
    users: Users,
    name: Option<String>,
    timeout: Timeout,
}

impl Chat {
    fn broadcast(&self, message: &str) {
        for (name, sender) in self.users.borrow().iter() {
            if Some(name) != self.name.as_ref() {
                sender.send_line(message.as_bytes());
            }
        }
    }
}

impl LineHandler for Chat {
    const MAX_LENGTH: usize = MAX_LINE;

    fn connection_made(&mut self, conn: &mut LineConnection<'_>) {
        // Abort, not lose: an idle user may not be reading either.
        self.timeout.on_transport_abort(conn.transport().clone());
        self.timeout.set_timeout(Some(IDLE));
        conn.send_line(b"What's your name?");
    }

    fn line_received(&mut self, line: &[u8], conn: &mut LineConnection<'_>) {
        self.timeout.reset_timeout();
        let text = String::from_utf8_lossy(line).trim().to_string();
        match &self.name {
            None => {
                if text.is_empty() || text.len() > MAX_NAME || text.contains(char::is_whitespace) {
                    conn.send_line(
                        format!("A name is 1 to {MAX_NAME} bytes, no spaces.").as_bytes(),
                    );
                } else if self.users.borrow().contains_key(&text) {
                    conn.send_line(b"Name taken, please choose another.");
                } else {
                    conn.send_line(format!("Welcome, {text}!").as_bytes());
                    self.name = Some(text.clone());
                    self.broadcast(&format!("{text} has joined"));
                    self.users.borrow_mut().insert(text, conn.sender());
                }
            }
            Some(name) => self.broadcast(&format!("<{name}> {text}")),
        }
    }

    fn connection_lost(&mut self, _reason: Failure) {
        self.timeout.set_timeout(None);
        if let Some(name) = self.name.clone() {
            self.users.borrow_mut().remove(&name);
            self.broadcast(&format!("{name} has left"));
        }
    }
}

/// The chat factory: a `Chat` per connection, at most `MAX_USERS` at once.
fn chat_factory() -> LimitTotalConnectionsFactory<impl twined::protocol::Factory> {
    let users = Users::default();
    LimitTotalConnectionsFactory::new(
        move |_peer: SocketAddr| {
            LineReceiver::new(Chat {
                users: users.clone(),
                name: None,
                timeout: Timeout::new(),
            })
        },
        MAX_USERS,
    )
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--demo") {
        return demo();
    }
    let port: u16 = match arg.map(|p| p.parse()) {
        None => 8123,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: chat_server [PORT | --demo]");
            return ExitCode::from(2);
        }
    };
    match reactor::listen_tcp(format!("127.0.0.1:{port}"), chat_factory()) {
        Ok(p) => eprintln!("chat on {} (Ctrl-C stops)", p.address()),
        Err(e) => {
            eprintln!("chat_server: {e}");
            return ExitCode::from(2);
        }
    }
    match reactor::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a scripted user saw, and who waits for which line.
#[derive(Default)]
struct Inbox {
    lines: Vec<String>,
    waiting: Vec<(String, Trigger<()>)>,
}

/// A scripted user's side of the connection.
struct User(Rc<RefCell<Inbox>>);

impl LineHandler for User {
    fn line_received(&mut self, line: &[u8], _conn: &mut LineConnection<'_>) {
        let line = String::from_utf8_lossy(line).into_owned();
        let ready: Vec<Trigger<()>> = {
            let mut inbox = self.0.borrow_mut();
            let (ready, waiting) = std::mem::take(&mut inbox.waiting)
                .into_iter()
                .partition(|(pattern, _)| line.contains(pattern.as_str()));
            inbox.waiting = waiting;
            inbox.lines.push(line);
            ready.into_iter().map(|(_, t)| t).collect()
        };
        for trigger in ready {
            trigger.callback(());
        }
    }
}

/// A connected scripted user.
struct Script {
    inbox: Rc<RefCell<Inbox>>,
    sender: LineSender,
    transport: Transport,
}

impl Script {
    async fn connect(port: u16) -> Result<Script, Failure> {
        let inbox = Rc::new(RefCell::new(Inbox::default()));
        let transport =
            reactor::connect_protocol("127.0.0.1", port, LineReceiver::new(User(inbox.clone())))
                .await?;
        Ok(Script {
            inbox,
            sender: LineSender::new(transport.clone(), b"\r\n"),
            transport,
        })
    }

    fn say(&self, line: &str) {
        self.sender.send_line(line.as_bytes());
    }

    /// Fires once a line containing `pattern` has arrived (bounded).
    fn expect(&self, pattern: &str) -> Deferred<()> {
        let mut inbox = self.inbox.borrow_mut();
        if inbox.lines.iter().any(|l| l.contains(pattern)) {
            return twined::defer::succeed(());
        }
        let (d, trigger) = Deferred::new();
        inbox.waiting.push((pattern.to_string(), trigger));
        d.add_timeout(Duration::from_secs(5))
    }

    fn transcript(&self) -> Vec<String> {
        self.inbox.borrow().lines.clone()
    }
}

fn demo() -> ExitCode {
    let result = task::react_async(|| async {
        let port = reactor::listen_tcp("127.0.0.1:0", chat_factory()).map_err(Failure::new)?;
        let p = port.address().port();

        let alice = Script::connect(p).await?;
        alice.expect("What's your name?").await?;
        alice.say("alice");
        alice.expect("Welcome, alice!").await?;

        let bob = Script::connect(p).await?;
        bob.expect("What's your name?").await?;
        bob.say("alice");
        bob.expect("Name taken").await?;
        bob.say("bob");
        bob.expect("Welcome, bob!").await?;
        alice.expect("bob has joined").await?;

        alice.say("hi bob");
        bob.expect("<alice> hi bob").await?;
        bob.say("hello alice, bye");
        alice.expect("<bob> hello alice, bye").await?;

        bob.transport.lose_connection();
        bob.transport.when_closed().await?;
        alice.expect("bob has left").await?;
        alice.transport.lose_connection();
        alice.transport.when_closed().await?;
        port.stop_listening();

        for (name, user) in [("alice", &alice), ("bob", &bob)] {
            for line in user.transcript() {
                println!("{name}| {line}");
            }
        }
        Ok::<_, Failure>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("chat_server demo: {failure}");
            ExitCode::FAILURE
        }
    }
}

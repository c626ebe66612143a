//! Typed helpers for the commands a work queue on Redis needs (streams with
//! consumer groups, sets for de-duplication, lists), each a thin layer over
//! [`Client::command`] that turns the reply into Rust types.
//!
//! A reply of the wrong shape errbacks with
//! [`RedisError::UnexpectedReply`]; an error reply with
//! [`RedisError::Server`]. Anything not here goes through
//! [`Client::command`].

use std::time::Duration;

use super::client::Client;
use super::error::RedisError;
use super::value::{ErrorKind, Value};
use crate::defer::{Deferred, Failure};

/// One stream entry: its ID and its field/value pairs in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry ID (`"1700000000000-0"`).
    pub id: String,
    /// The field/value pairs. Empty for an entry deleted from the stream
    /// while still pending in a group (Redis replies nil for its fields).
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamEntry {
    /// The value of the first field named `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    fn from_value(value: Value) -> Option<StreamEntry> {
        let Value::Array(mut parts) = value else {
            return None;
        };
        if parts.len() != 2 {
            return None;
        }
        let fields = parts.pop()?;
        let id = parts.pop()?.as_str()?.to_string();
        let fields = match fields {
            Value::Nil => Vec::new(),
            Value::Array(flat) => {
                if flat.len() % 2 != 0 {
                    return None;
                }
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                let mut it = flat.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((bytes(k)?, bytes(v)?));
                }
                pairs
            }
            _ => return None,
        };
        Some(StreamEntry { id, fields })
    }
}

/// What `XAUTOCLAIM` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoClaim {
    /// Where the next `XAUTOCLAIM` should start; `"0-0"` once the whole
    /// pending list was scanned.
    pub next: String,
    /// The entries now owned by the claiming consumer.
    pub entries: Vec<StreamEntry>,
    /// IDs that were pending but no longer exist in the stream (Redis 7);
    /// Redis removed them from the pending list.
    pub deleted: Vec<String>,
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::Data(b) => Some(b),
        Value::Status(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn entries(value: Value) -> Option<Vec<StreamEntry>> {
    match value {
        Value::Array(items) => items.into_iter().map(StreamEntry::from_value).collect(),
        _ => None,
    }
}

/// Maps a reply with `f`, or fails with `UnexpectedReply` naming `command`.
fn typed<T: 'static>(
    d: Deferred<Value>,
    command: &'static str,
    f: impl FnOnce(Value) -> Option<T> + 'static,
) -> Deferred<T> {
    d.and_then(move |value| {
        let got = value.describe();
        f(value).ok_or_else(|| Failure::new(RedisError::UnexpectedReply { command, got }))
    })
}

fn count(value: Value) -> Option<u64> {
    value.as_int().and_then(|i| u64::try_from(i).ok())
}

/// Seconds as Redis reads them in timeouts (`"0.25"`).
fn seconds(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

impl Client {
    /// `PING`: fires when the server answers `PONG`.
    pub fn ping(&self) -> Deferred<()> {
        typed(self.command(["PING"]), "PING", |v| {
            (v.as_str() == Some("PONG")).then_some(())
        })
    }

    /// `XADD stream * field value ...`: appends an entry with a server-made
    /// ID and fires with that ID.
    pub fn xadd<K, V>(
        &self,
        stream: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Deferred<String>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut args: Vec<Vec<u8>> = vec![b"XADD".to_vec(), stream.into(), b"*".to_vec()];
        for (k, v) in fields {
            args.push(k.as_ref().to_vec());
            args.push(v.as_ref().to_vec());
        }
        typed(self.command(args), "XADD", |v| {
            v.as_str().map(str::to_string)
        })
    }

    /// `XGROUP CREATE stream group start MKSTREAM`: creates the consumer group
    /// (and the stream if missing). Fires with `true` when created, `false`
    /// when the group already existed (`BUSYGROUP`), so it is safe to call on
    /// every start. `start` is `"$"` for new entries only, `"0"` for all.
    pub fn xgroup_create(&self, stream: &str, group: &str, start: &str) -> Deferred<bool> {
        self.command(["XGROUP", "CREATE", stream, group, start, "MKSTREAM"])
            .then(|result| match result {
                Ok(v) if v.as_str() == Some("OK") => Ok(true),
                Ok(v) => Err(Failure::new(RedisError::UnexpectedReply {
                    command: "XGROUP CREATE",
                    got: v.describe(),
                })),
                Err(failure) => match failure.downcast_ref::<RedisError>() {
                    Some(e) if e.server_kind() == Some(&ErrorKind::BusyGroup) => Ok(false),
                    _ => Err(failure),
                },
            })
    }

    /// `XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] STREAMS stream >`:
    /// up to `count` entries never delivered to the group, waiting up to
    /// `block` for some (`None`: do not block). Fires with no entries when
    /// none came in time.
    pub fn xreadgroup(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Deferred<Vec<StreamEntry>> {
        let count = count.to_string();
        let mut args = vec!["XREADGROUP", "GROUP", group, consumer, "COUNT", &count];
        let block_ms = block.map(|b| b.as_millis().to_string());
        if let Some(ms) = &block_ms {
            args.extend(["BLOCK", ms.as_str()]);
        }
        args.extend(["STREAMS", stream, ">"]);
        typed(self.command(args), "XREADGROUP", |v| match v {
            Value::Nil => Some(Vec::new()),
            Value::Array(streams) => {
                let mut all = Vec::new();
                for s in streams {
                    let Value::Array(mut pair) = s else {
                        return None;
                    };
                    if pair.len() != 2 {
                        return None;
                    }
                    all.extend(entries(pair.pop()?)?);
                }
                Some(all)
            }
            _ => None,
        })
    }

    /// `XACK stream group id ...`: fires with how many entries were
    /// acknowledged (entries not pending are not counted).
    pub fn xack<I: AsRef<[u8]>>(
        &self,
        stream: &str,
        group: &str,
        ids: impl IntoIterator<Item = I>,
    ) -> Deferred<u64> {
        let mut args: Vec<Vec<u8>> = vec![b"XACK".to_vec(), stream.into(), group.into()];
        args.extend(ids.into_iter().map(|id| id.as_ref().to_vec()));
        typed(self.command(args), "XACK", count)
    }

    /// `XAUTOCLAIM stream group consumer min-idle start COUNT count`: takes
    /// over up to `count` entries pending longer than `min_idle` for other
    /// consumers (a dead worker's), scanning from `start` (`"0-0"` first, then
    /// the returned [`AutoClaim::next`]).
    pub fn xautoclaim(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        start: &str,
        count: usize,
    ) -> Deferred<AutoClaim> {
        let idle = min_idle.as_millis().to_string();
        let count = count.to_string();
        let args = [
            "XAUTOCLAIM",
            stream,
            group,
            consumer,
            &idle,
            start,
            "COUNT",
            &count,
        ];
        typed(self.command(args), "XAUTOCLAIM", |v| {
            let Value::Array(parts) = v else {
                return None;
            };
            let mut parts = parts.into_iter();
            let next = parts.next()?.as_str()?.to_string();
            let entries = entries(parts.next()?)?;
            let deleted = match parts.next() {
                Some(Value::Array(ids)) => ids
                    .into_iter()
                    .map(|id| id.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()?,
                None => Vec::new(),
                Some(_) => return None,
            };
            Some(AutoClaim {
                next,
                entries,
                deleted,
            })
        })
    }

    /// `SADD key member ...`: fires with how many members were new. With one
    /// member, `1` means "first time seen" (de-duplication).
    pub fn sadd<M: AsRef<[u8]>>(
        &self,
        key: &str,
        members: impl IntoIterator<Item = M>,
    ) -> Deferred<u64> {
        let mut args: Vec<Vec<u8>> = vec![b"SADD".to_vec(), key.into()];
        args.extend(members.into_iter().map(|m| m.as_ref().to_vec()));
        typed(self.command(args), "SADD", count)
    }

    /// `SISMEMBER key member`.
    pub fn sismember(&self, key: &str, member: impl AsRef<[u8]>) -> Deferred<bool> {
        let args: [&[u8]; 3] = [b"SISMEMBER", key.as_bytes(), member.as_ref()];
        typed(self.command(args), "SISMEMBER", |v| match v.as_int() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        })
    }

    /// `LPUSH key value ...`: fires with the list's new length.
    pub fn lpush<V: AsRef<[u8]>>(
        &self,
        key: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Deferred<u64> {
        let mut args: Vec<Vec<u8>> = vec![b"LPUSH".to_vec(), key.into()];
        args.extend(values.into_iter().map(|v| v.as_ref().to_vec()));
        typed(self.command(args), "LPUSH", count)
    }

    /// `BRPOP key ... timeout`: the first value popped from the tail of the
    /// first non-empty list, as `(key, value)`, or `None` after `timeout`
    /// (`Duration::ZERO` waits forever). It blocks the connection meanwhile.
    pub fn brpop<K: AsRef<[u8]>>(
        &self,
        keys: impl IntoIterator<Item = K>,
        timeout: Duration,
    ) -> Deferred<Option<(Vec<u8>, Vec<u8>)>> {
        let mut args: Vec<Vec<u8>> = vec![b"BRPOP".to_vec()];
        args.extend(keys.into_iter().map(|k| k.as_ref().to_vec()));
        args.push(seconds(timeout).into_bytes());
        typed(self.command(args), "BRPOP", |v| match v {
            Value::Nil => Some(None),
            Value::Array(pair) if pair.len() == 2 => {
                let mut pair = pair.into_iter();
                let key = bytes(pair.next()?)?;
                let value = bytes(pair.next()?)?;
                Some(Some((key, value)))
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_reject_odd_shapes() {
        let entry = Value::Array(vec![
            Value::Data(b"1-0".to_vec()),
            Value::Array(vec![
                Value::Data(b"url".to_vec()),
                Value::Data(b"u".to_vec()),
            ]),
        ]);
        let parsed = StreamEntry::from_value(entry).unwrap();
        assert_eq!(parsed.id, "1-0");
        assert_eq!(parsed.field("url"), Some(&b"u"[..]));
        let deleted = Value::Array(vec![Value::Data(b"2-0".to_vec()), Value::Nil]);
        assert!(StreamEntry::from_value(deleted).unwrap().fields.is_empty());
        let odd = Value::Array(vec![
            Value::Data(b"3-0".to_vec()),
            Value::Array(vec![Value::Nil]),
        ]);
        assert!(StreamEntry::from_value(odd).is_none());
        assert!(StreamEntry::from_value(Value::Int(1)).is_none());
    }

    #[test]
    fn seconds_are_decimal() {
        assert_eq!(seconds(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_secs(5)), "5");
    }
}

//! `--resume`: which URLs an earlier run's output already has a line for,
//! and where its last complete line ends.
//!
//! The file is read once, a line at a time, in bounded memory: each URL is
//! kept as a 128-bit keyed hash (16 bytes however long the URL is; two
//! different URLs collide with odds of about n²/2¹²⁹), never as a string. A
//! line counts when it is a JSON object with a `url` and, unless `--resume-all`,
//! a null or absent `error`. The URL is matched exactly as the line shows
//! it, password redacted as `***`; the crawl redacts each input URL the
//! same way before it looks it up.
//!
//! A crash can leave the last line torn: without its newline, or cut so
//! that it is not JSON. That line is ignored, reported, and cut off
//! ([`Scan::keep`]) before new lines are appended, so the next line is not
//! glued to it. A complete line that is not a crawl line elsewhere in the
//! file is counted in [`Scan::bad`], left as it is, and ignored.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{self, BufReader};
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::input::read_capped_line;

/// The longest line read as a record; a longer one is not a crawl line
/// (its URL alone is at most 64 KiB) and is skipped without being kept.
const MAX_RECORD: usize = 1 << 20;

/// The URLs that have a line, as hashes.
pub struct Done {
    hashes: HashSet<u128>,
    keys: (RandomState, RandomState),
}

impl Done {
    fn new() -> Done {
        Done {
            hashes: HashSet::new(),
            keys: (RandomState::new(), RandomState::new()),
        }
    }

    fn hash(&self, url: &str) -> u128 {
        let high = self.keys.0.hash_one(url);
        let low = self.keys.1.hash_one(url);
        (u128::from(high) << 64) | u128::from(low)
    }

    /// Whether `url` (as a line shows it) has a line.
    pub fn contains(&self, url: &str) -> bool {
        self.hashes.contains(&self.hash(url))
    }

    /// URLs with a line.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }
}

/// What reading the output found.
pub struct Scan {
    pub done: Done,
    /// Complete lines that are not crawl lines (kept, ignored).
    pub bad: u64,
    /// Where the last complete line ends: the file is cut here.
    pub keep: u64,
    /// The torn last line, described, when there was one.
    pub torn: Option<String>,
}

/// The members of a line that matter here.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    url: std::borrow::Cow<'a, str>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// Reads `path` (a missing file is an empty one): the URLs with a success
/// line, or with any line when `all`.
pub fn scan(path: &Path, all: bool) -> io::Result<Scan> {
    let mut scan = Scan {
        done: Done::new(),
        bad: 0,
        keep: 0,
        torn: None,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(scan),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::new();
    let mut at = 0u64;
    // The last complete line was not a crawl line: where it starts.
    let mut last_bad: Option<u64> = None;
    loop {
        line.clear();
        let (len, complete) = read_capped_line(&mut reader, &mut line, MAX_RECORD, |_| Ok(()))?;
        if len == 0 {
            break;
        }
        if !complete {
            scan.torn = Some(format!("{len} bytes without a newline"));
            break;
        }
        if last_bad.take().is_some() {
            // Not the last line after all.
            scan.bad += 1;
        }
        let parsed = (line.len() <= MAX_RECORD)
            .then(|| serde_json::from_slice::<Line>(&line).ok())
            .flatten();
        match parsed {
            Some(record) => {
                if all || record.error.is_none() {
                    let hash = scan.done.hash(&record.url);
                    scan.done.hashes.insert(hash);
                }
            }
            None => last_bad = Some(at),
        }
        at += len;
        scan.keep = at;
    }
    if let Some(start) = last_bad {
        scan.torn = Some(format!("{} bytes that are not a JSON line", at - start));
        scan.keep = start;
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_of(text: &[u8], all: bool) -> Scan {
        let dir = std::env::temp_dir().join(format!("crawl-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.jsonl", fastrand::u64(..)));
        std::fs::write(&path, text).unwrap();
        let scan = scan(&path, all).unwrap();
        let _ = std::fs::remove_file(&path);
        scan
    }

    const OK: &str = r#"{"url":"http://a/","status":200,"error":null}"#;
    const FAILED: &str =
        r#"{"url":"http://b/","status":null,"error":{"kind":"connect","message":"x"}}"#;

    #[test]
    fn success_lines_count_failures_only_with_all() {
        let text = format!("{OK}\n{FAILED}\n");
        let s = scan_of(text.as_bytes(), false);
        assert!(s.done.contains("http://a/") && !s.done.contains("http://b/"));
        assert_eq!(
            (s.keep, s.bad, s.torn.is_none()),
            (text.len() as u64, 0, true)
        );
        let s = scan_of(text.as_bytes(), true);
        assert!(s.done.contains("http://a/") && s.done.contains("http://b/"));
        assert_eq!(s.done.len(), 2);
    }

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let whole = format!("{OK}\n");
        let text = format!("{whole}{}", &FAILED[..20]);
        let s = scan_of(text.as_bytes(), true);
        assert_eq!(s.keep, whole.len() as u64);
        assert!(s.torn.as_deref().unwrap().contains("without a newline"));
        // Cut mid-line, newline present (not JSON): cut off too.
        let text = format!("{whole}{{\"url\":\"http://c\n");
        let s = scan_of(text.as_bytes(), true);
        assert_eq!(s.keep, whole.len() as u64);
        assert!(s.torn.as_deref().unwrap().contains("not a JSON line"));
        assert!(!s.done.contains("http://c"));
    }

    #[test]
    fn a_bad_line_in_the_middle_is_kept_and_ignored() {
        let text = format!("garbage\n{OK}\n");
        let s = scan_of(text.as_bytes(), false);
        assert_eq!((s.bad, s.keep), (1, text.len() as u64));
        assert!(s.torn.is_none() && s.done.contains("http://a/"));
    }

    #[test]
    fn an_overlong_line_is_not_kept() {
        let mut text = vec![b'x'; MAX_RECORD * 2];
        text.push(b'\n');
        text.extend_from_slice(format!("{OK}\n").as_bytes());
        let s = scan_of(&text, false);
        assert_eq!(s.bad, 1);
        assert!(s.done.contains("http://a/"));
    }

    #[test]
    fn a_missing_file_is_empty() {
        let missing = std::env::temp_dir().join(format!("crawl-resume-none-{}", fastrand::u64(..)));
        let s = scan(&missing, false).unwrap();
        assert_eq!((s.done.len(), s.keep), (0, 0));
    }
}

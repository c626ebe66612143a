//! One fetch: the request, the response head, the body counted (and saved
//! with `--save`), ending in an [`Outcome`] whatever happened.

use std::cell::RefCell;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use twined::defer::{Deferred, Failure, Trigger};
use twined::web::client::{Agent, BodyConsumer, Response};
use twined::web::{Error as WebError, Headers};

/// What the response head said.
pub struct Head {
    pub status: u16,
    /// The URL that answered, after redirects.
    pub final_url: String,
    pub redirects: usize,
    pub content_type: Option<String>,
    /// The `Retry-After` header, for the retry policy.
    pub retry_after: Option<String>,
}

impl Head {
    fn of(response: &Response) -> Head {
        Head {
            status: response.status,
            final_url: response.url.clone(),
            redirects: response.history.len(),
            content_type: response.headers.get("content-type").map(str::to_string),
            retry_after: response.headers.get("retry-after").map(str::to_string),
        }
    }
}

/// One finished fetch.
pub struct Outcome {
    /// The response head, when one arrived.
    pub head: Option<Head>,
    /// Body bytes received (decoded).
    pub bytes: u64,
    pub error: Option<Failure>,
    /// The file this fetch created with `--save`.
    pub saved: Option<PathBuf>,
}

impl Outcome {
    /// A fetch that failed before it began.
    pub fn failed(error: Failure) -> Outcome {
        Outcome {
            head: None,
            bytes: 0,
            error: Some(error),
            saved: None,
        }
    }
}

/// A body could not be saved: the file exists (or is a symlink), or
/// writing it failed. Reported with kind `io`.
#[derive(Debug)]
pub struct SaveError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot save the body to {}: {}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for SaveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A file name for the `index`th body from `url`: safe characters only,
/// so it never leaves the directory.
pub fn save_name(index: u64, url: &str) -> String {
    let tail = url.split("://").nth(1).unwrap_or(url);
    let safe: String = tail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    format!("{index:07}-{}", safe.trim_start_matches('.'))
}

/// Creates `path` as a new file: an existing file or a symlink (even a
/// dangling one) there is an error, never followed or overwritten.
fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(path)
}

/// Counts a body (and writes it to a file with --save), keeping nothing.
struct Sink {
    bytes: u64,
    file: Option<(BufWriter<File>, PathBuf)>,
    write_error: Option<io::Error>,
    done: Option<Trigger<u64>>,
}

impl BodyConsumer for Sink {
    fn data(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        if let (Some((file, _)), None) = (self.file.as_mut(), self.write_error.as_ref()) {
            if let Err(e) = file.write_all(chunk) {
                self.write_error = Some(e);
            }
        }
    }

    fn finished(&mut self, result: Result<(), Failure>) {
        let mut save_error = self.write_error.take();
        let mut path = None;
        if let Some((mut file, p)) = self.file.take() {
            if let Err(e) = file.flush() {
                save_error.get_or_insert(e);
            }
            path = Some(p);
        }
        let result = match (result, save_error) {
            (Err(f), _) => Err(f),
            (Ok(()), Some(source)) => Err(Failure::new(SaveError {
                path: path.unwrap_or_default(),
                source,
            })),
            (Ok(()), None) => Ok(self.bytes),
        };
        if let Some(done) = self.done.take() {
            done.fire_with(result);
        }
    }
}

/// Fetches `url` with `headers`: the response head, then its body counted
/// (or saved into a new file at `save`).
pub fn fetch(
    agent: &Agent,
    url: &str,
    headers: Headers,
    save: Option<PathBuf>,
) -> Deferred<Outcome> {
    // The file made, known however the fetch ends (a retry removes it).
    let made: Rc<RefCell<Option<PathBuf>>> = Rc::default();
    let made_here = made.clone();
    agent
        .request("GET", url, headers, None)
        .and_then(move |response: Response| {
            let head = Head::of(&response);
            let file = match save {
                None => None,
                Some(path) => match create_new(&path) {
                    Ok(f) => Some((BufWriter::new(f), path)),
                    Err(source) => {
                        response.abort();
                        return twined::defer::fail(Failure::new(SaveError { path, source }));
                    }
                },
            };
            *made_here.borrow_mut() = file.as_ref().map(|(_, p)| p.clone());
            let (d, done) = Deferred::new();
            response.deliver_body(Sink {
                bytes: 0,
                file,
                write_error: None,
                done: Some(done),
            });
            d.add_callback(move |bytes| (head, bytes))
        })
        .add_both(move |result| match result {
            Ok((head, bytes)) => {
                let error = (head.status >= 400).then(|| {
                    Failure::new(WebError::Http {
                        status: head.status,
                        reason: String::new(),
                        url: head.final_url.clone(),
                        body: Vec::new(),
                    })
                });
                Outcome {
                    head: Some(head),
                    bytes,
                    error,
                    saved: made.take(),
                }
            }
            Err(failure) => Outcome {
                saved: made.take(),
                ..Outcome::failed(failure)
            },
        })
}

//! `--cookie-jar FILE`: the jar read at the start and written back at the
//! end. A missing file is an empty jar; the file is replaced atomically (a
//! temporary file beside it, synced, then renamed), so a crash mid-save
//! leaves the old jar whole. The file is the owner's alone (mode 0600).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use twined::web::client::CookieJar;

/// The jar in `path`, or an empty one if there is no such file.
pub fn load(path: &Path) -> Result<CookieJar, String> {
    match fs::File::open(path) {
        Ok(file) => CookieJar::load(io::BufReader::new(file))
            .map_err(|e| format!("cannot load cookies from {}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CookieJar::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `jar` (session cookies included) to `path`, atomically.
pub fn save(jar: &CookieJar, path: &Path) -> Result<(), String> {
    let temp = temp_path(path);
    // A stale one from an earlier process of the same id.
    let _ = fs::remove_file(&temp);
    let written = write_synced(jar, &temp).and_then(|()| fs::rename(&temp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&temp);
        format!("cannot save cookies to {}: {e}", path.display())
    })
}

fn write_synced(jar: &CookieJar, temp: &Path) -> io::Result<()> {
    // Cookies are credentials: readable by the owner only.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)?;
    jar.save_including_session(&mut file).map_err(|e| match e {
        twined::web::client::CookieJarError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    })?;
    file.flush()?;
    file.sync_all()
}

/// `FILE.tmp-PID` beside `path`: the rename stays on one file system.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

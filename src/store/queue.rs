//! Unsubscribes the server could not record at once (the store busy with a
//! long import, say), kept durably until they can be.
//!
//! Mail clients do not retry a one-click unsubscribe, so an answer of
//! "try again" would lose it. Instead the server appends the subscriber's
//! key to `<store>.unsubscribes` (mode 0600, flushed to disk before the
//! answer) and says it is done; the queue is applied as soon as the store
//! allows: by the server, and by every delivery run before each batch it
//! takes, so no later digest reaches that address. Appends and the applying
//! hold an exclusive lock on the file, so none is lost between them.

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{Changed, StatusChange, Store, StoreError};

/// The queue file beside the store at `store`.
pub fn queue_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".unsubscribes");
    PathBuf::from(name)
}

/// Queues the unsubscribe of the subscriber `key`, asked at `at`: on disk
/// when this returns.
pub fn push(store: &Path, key: &str, at: DateTime<Utc>) -> std::io::Result<()> {
    let path = queue_path(store);
    let mut file = crate::atomic::private_options()
        .read(true)
        .append(true)
        .open(&path)?;
    file.lock()?;
    // One write of the whole line, after a line break if an earlier write
    // was cut short (a crash, a full disk), so no two requests share a line.
    let torn = file.metadata()?.len() > 0 && {
        let mut last = [0u8; 1];
        std::os::unix::fs::FileExt::read_at(&file, &mut last, file.metadata()?.len() - 1)?;
        last[0] != b'\n'
    };
    let line = format!(
        "{}{key}\t{}\n",
        if torn { "\n" } else { "" },
        super::timestamp(at)
    );
    file.write_all(line.as_bytes())?;
    file.sync_data()
}

impl Store {
    /// Applies the queued unsubscribes, then empties the queue; the number
    /// applied. Nothing to do (the usual case) costs one `stat`.
    pub fn apply_queued_unsubscribes(&self) -> Result<usize, StoreError> {
        let path = queue_path(self.path());
        let io = |source: std::io::Error| StoreError::Queue {
            path: path.clone(),
            source,
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > 0 => {}
            _ => return Ok(0),
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        let mut entries = Vec::new();
        for line in std::io::BufReader::new(&file).split(b'\n') {
            // A damaged line is skipped (and said), never a reason to stop.
            let line = line.map_err(io)?;
            let line = String::from_utf8_lossy(&line);
            let mut fields = line.split('\t');
            let key = fields.next().unwrap_or("").trim();
            if !super::is_key(key) {
                if !line.trim().is_empty() {
                    tracing::warn!(line = %line.escape_debug(), "a damaged line of the unsubscribe queue skipped");
                }
                continue;
            }
            // A time cut short: the request still stands, as of now.
            let at = fields
                .next()
                .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
                .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
            entries.push((key.to_string(), at));
        }
        let mut applied = 0;
        for (key, at) in &entries {
            if let Some(subscriber) = self.subscriber_by_key(key)? {
                let change = self.change_status(subscriber.id, StatusChange::Unsubscribe, *at)?;
                if change == Changed::Done {
                    tracing::info!(subscriber = subscriber.id, "queued unsubscribe applied");
                }
                applied += 1;
            }
        }
        // Only once every one is recorded: a crash before this applies
        // them again, which changes nothing.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cut_short_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("n.db");
        std::fs::write(queue_path(&store), b"\xff\xfe\nabc1\t2026-12-02T05:").unwrap();
        push(&store, "def2", "2026-12-02T06:00:00Z".parse().unwrap()).unwrap();
        let text = std::fs::read(queue_path(&store)).unwrap();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        assert_eq!(lines[2], "def2\t2026-12-02T06:00:00.000Z");
    }
}

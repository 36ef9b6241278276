//! Files written whole or not at all, and files only their owner can read.
//!
//! Feeds, archive pages and previews are written to a temporary file beside
//! their destination and renamed into place ([`stage_file`], then
//! [`Staged::commit`]), so a reader sees the old file or the new one, never
//! half of one. The store, its lock file and anything else holding secrets
//! are created with mode 0600 ([`create_private`], [`private_options`]).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Temporary files start with this, so [`remove_stale_temp_files`] knows them.
const TEMP_PREFIX: &str = ".newsletter-";

/// A file that could not be written (or renamed into place).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", .path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Temporary files older than this were left by a writer that died
/// (killed, a power cut); no build runs for an hour.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Deletes the temporary files (`.newsletter-*`) that killed writers left
/// in `output_dir`. Recent ones may belong to a build running now and
/// stay. Best effort: what cannot be read or deleted is left alone.
pub fn remove_stale_temp_files(output_dir: &Path) {
    let walk = walkdir::WalkDir::new(output_dir)
        .max_depth(4)
        .follow_links(false);
    for entry in walk.into_iter().flatten() {
        let stale = entry.file_type().is_file()
            && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes a file's new content to a temporary file in the same folder, to
/// be renamed into place by [`Staged::commit`], so a reader sees the old
/// file or the new one, never half of one. `fill` streams the content.
/// Returns `None` (and deletes the temporary file) when the bytes are the same.
pub fn stage_file(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<Option<Staged>, WriteError> {
    let error = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(error)?;
    let old = File::open(path)
        .ok()
        .map(|f| BufReader::with_capacity(1 << 16, f));
    let mut writer = CompareWriter {
        inner: BufWriter::with_capacity(1 << 20, temp),
        old,
        same: true,
        scratch: Vec::new(),
    };
    fill(&mut writer).map_err(error)?;
    let unchanged = writer.finish_comparing();
    let temp = writer
        .inner
        .into_inner()
        .map_err(|e| error(e.into_error()))?;
    if unchanged {
        return Ok(None);
    }
    set_readable(temp.as_file()).map_err(error)?;
    Ok(Some(Staged {
        temp,
        path: path.to_path_buf(),
    }))
}

/// A file written in full beside its destination, waiting to be renamed
/// into place; dropped uncommitted, it is deleted.
#[derive(Debug)]
pub struct Staged {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl Staged {
    /// The destination relative to `root`, with `/` separators.
    pub fn relative_to(&self, root: &Path) -> String {
        let relative = self.path.strip_prefix(root).unwrap_or(&self.path);
        relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Renames the file into place. No fsync: the rename is what keeps
    /// readers from seeing half a file, and a feed lost to a power cut is
    /// rebuilt by the next build.
    /// Renames the file into place unless a file is there already (one
    /// that appeared since it was staged): then it fails and the staged
    /// file is deleted.
    pub fn commit_new(self) -> Result<(), WriteError> {
        let path = self.path;
        self.temp.persist_noclobber(&path).map_err(|e| WriteError {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    pub fn commit(self) -> Result<(), WriteError> {
        let path = self.path;
        self.temp.persist(&path).map_err(|e| WriteError {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// Passes bytes to `inner` and compares them with the old file as they go.
struct CompareWriter<W> {
    inner: W,
    old: Option<BufReader<File>>,
    same: bool,
    scratch: Vec<u8>,
}

impl<W> CompareWriter<W> {
    /// True when everything written equals the whole old file.
    fn finish_comparing(&mut self) -> bool {
        match (&mut self.old, self.same) {
            (Some(old), true) => matches!(old.read(&mut [0u8; 1]), Ok(0)),
            _ => false,
        }
    }
}

impl<W: Write> Write for CompareWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        if self.same {
            match &mut self.old {
                Some(old) => {
                    self.scratch.resize(n, 0);
                    self.same =
                        old.read_exact(&mut self.scratch).is_ok() && self.scratch == data[..n];
                }
                None => self.same = false,
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(unix)]
fn set_readable(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Options that create a file readable and writable by its owner only
/// (mode 0600 on Unix), for writing, without truncating one that exists.
pub fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates the folder `dir` (and its parents) if missing; the folder made
/// last is its owner's only (mode 0700 on Unix), whatever the umask. A
/// folder that exists keeps its mode.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Makes a file its owner's only (mode 0600 on Unix).
pub fn make_private(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates `path` (and its folder) readable by its owner only, unless it
/// exists already: before SQLite opens a database, which it would create
/// with the umask's mode.
pub fn create_private(path: &Path) -> io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    private_options().open(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_file_appears_whole_on_commit_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/feed.xml");
        let staged = stage_file(&path, |w| w.write_all(b"new")).unwrap().unwrap();
        assert!(!path.exists());
        staged.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        // The same bytes again: nothing to rename, no temporary file left.
        assert!(
            stage_file(&path, |w| w.write_all(b"new"))
                .unwrap()
                .is_none()
        );
        let left: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn a_failed_fill_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.xml");
        std::fs::write(&path, b"old").unwrap();
        let error = stage_file(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(error.to_string().contains("feed.xml"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_mode_0600_and_kept_when_they_exist() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/store.db");
        create_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"kept").unwrap();
        create_private(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    }
}

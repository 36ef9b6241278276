//! The send lock: one delivering process at a time per store.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Held while a run delivers, so a second `send` (or the server's
/// scheduler) never delivers the same digest at the same time.
pub struct SendLock {
    _file: std::fs::File,
}

impl SendLock {
    /// The lock, or an error saying who holds it.
    pub fn acquire(store_path: &Path) -> Result<SendLock> {
        match SendLock::try_acquire(store_path)? {
            Some(lock) => Ok(lock),
            None => bail!(
                "another `newsletter send` is delivering right now (it holds {}.lock); nothing was sent: wait for it to finish",
                store_path.display()
            ),
        }
    }

    /// The lock, or `None` while another process holds it.
    pub fn try_acquire(store_path: &Path) -> Result<Option<SendLock>> {
        let mut path = store_path.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        // Private like the store: anyone who can open the file can hold
        // the lock, and so stop every send.
        let file = crate::atomic::private_options()
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SendLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_send_lock_is_a_private_file_held_by_one_at_a_time() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("n.db");
        let lock = SendLock::acquire(&store).unwrap();
        let mode = std::fs::metadata(dir.path().join("n.db.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(SendLock::try_acquire(&store).unwrap().is_none());
        drop(lock);
        assert!(SendLock::try_acquire(&store).unwrap().is_some());
    }
}

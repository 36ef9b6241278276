//! The send lock: one delivering process at a time per store; and the
//! welcome lock, its own, so welcome mails go out while a digest does.

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
        Ok(try_lock(store_path, ".lock")?.map(|file| SendLock { _file: file }))
    }
}

/// Held while a run delivers welcome mails ([`crate::email::welcome`]):
/// a file of its own (`{store.path}.welcome.lock`), so a welcome never
/// waits for a digest in progress, nor makes `send` refuse to start one.
pub struct WelcomeLock {
    _file: std::fs::File,
}

impl WelcomeLock {
    /// The lock, or `None` while another process (or thread) holds it.
    pub fn try_acquire(store_path: &Path) -> Result<Option<WelcomeLock>> {
        Ok(try_lock(store_path, ".welcome.lock")?.map(|file| WelcomeLock { _file: file }))
    }
}

/// The lock file `{store_path}{suffix}`, locked, or `None` while someone
/// else holds it.
fn try_lock(store_path: &Path, suffix: &str) -> Result<Option<std::fs::File>> {
    let mut path = store_path.as_os_str().to_owned();
    path.push(suffix);
    let path = PathBuf::from(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Private like the store: anyone who can open the file can hold
    // the lock, and so stop every send.
    let file = crate::atomic::private_options()
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
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

    #[test]
    fn the_welcome_lock_is_another_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("n.db");
        let _send = SendLock::acquire(&store).unwrap();
        let welcome = WelcomeLock::try_acquire(&store).unwrap();
        assert!(
            welcome.is_some(),
            "a digest send does not hold welcomes back"
        );
        assert!(WelcomeLock::try_acquire(&store).unwrap().is_none());
        assert!(dir.path().join("n.db.welcome.lock").exists());
    }
}

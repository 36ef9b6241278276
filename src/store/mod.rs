//! The SQLite store: subscribers, digests and the delivery ledger.
//!
//! One file (`store.path`), created with mode 0600, in WAL mode. Its schema
//! is versioned with `PRAGMA user_version`; `open` migrates an older file
//! and refuses a newer one. The ledger is what makes sending safe to repeat:
//! a digest and one `pending` delivery per active subscriber are written in
//! one transaction, and each delivery is marked `sent` or `failed` as soon as
//! the server has answered for it.
//!
//! What it keeps is split by table: `migrations` (the schema),
//! `subscribers`, `digests` (and the posts they announced), `ledger`
//! (deliveries) and `welcomes` (the welcome mails' own ledger). Each adds
//! its methods to [`Store`], so callers see one type.

mod bounces;
mod digests;
mod ledger;
mod migrations;
pub mod queue;
mod subscribers;
mod welcomes;

pub use bounces::{DigestOutcomes, DigestReport, Event, Incoming, Recorded, Rules};
pub use digests::{
    Adoption, Announced, Archived, Choice, Kind, NewDigest, Plan, PostRef, Record, StoredDigest,
};
pub use ledger::{Counts, Outcome, Pending};
pub use migrations::{MIGRATIONS, SCHEMA_VERSION};
pub use subscribers::{
    Added, Changed, ImportRow, Imported, Status, StatusChange, Subscriber, is_key,
};

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction};

/// The shortest token secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// A store problem, naming the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create {path}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "NEWSLETTER_SECRET is shorter than {MIN_SECRET_BYTES} bytes (or `hex:` with no even number of hex digits after it): use a long random value, e.g. the output of `openssl rand -hex 32`"
    )]
    WeakSecret,
    #[error("the store's lock was poisoned by a panic")]
    Poisoned,
    #[error("cannot use the queue of unsubscribes {path}: {source}")]
    Queue {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: the stored token secret is damaged; set NEWSLETTER_SECRET, or delete the row `secret` of table `settings` (existing unsubscribe links stop working)"
    )]
    CorruptSecret { path: PathBuf },
    #[error(
        "{path} was written by a newer newsletter (schema {found}, this one knows {SCHEMA_VERSION}); upgrade newsletter"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error(
        "{path} is at schema {found}, this newsletter reads {SCHEMA_VERSION}: run a command that writes the store \
         (e.g. `newsletter subscribers list`) once to upgrade it"
    )]
    OtherVersion { path: PathBuf, found: i64 },
}

/// The store, open.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// A timestamp as stored.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An address in the one form the store keeps, so that one mailbox is one
/// row however it was typed: the local part without needless quotes or
/// backslashes (`"ann"@x.org` and `an\n@x.org` are `ann@x.org`), as
/// written otherwise (its letter case kept); the domain lowercased and in
/// its ASCII form (IDNA: `bücher.example` is `xn--bcher-kva.example`).
/// Refused: anything lettre does not take, and a local part that still
/// needs quotes (a space, `"`, `(`…), which an SMTP envelope cannot carry.
pub fn normalize_email(text: &str) -> Result<String, String> {
    let text = text.trim();
    let invalid = |why: String| format!("{text:?} is not a valid email address ({why})");
    let address: lettre::Address = text.parse().map_err(|e| invalid(format!("{e}")))?;
    let user = canonical_local_part(address.user()).ok_or_else(|| {
        invalid("quotes, spaces and the like in the part before @ cannot be delivered".into())
    })?;
    let domain = address.domain();
    let domain = if domain.starts_with('[') {
        domain.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(domain)
            .map_err(|_| invalid("the domain is not a valid name".into()))?
    };
    let canonical = format!("{user}@{domain}");
    // The same rules as the envelope's.
    let parsed: lettre::Address = canonical.parse().map_err(|e| invalid(format!("{e}")))?;
    lettre::address::Envelope::new(None, vec![parsed]).map_err(|e| invalid(format!("{e}")))?;
    Ok(canonical)
}

/// The local part without quotes and backslash escapes when what is left
/// is a dot-atom (RFC 5322 `atext` and dots, or UTF-8, RFC 6531); `None`
/// when it would still need quoting.
fn canonical_local_part(user: &str) -> Option<String> {
    let inner = match user.strip_prefix('"').and_then(|u| u.strip_suffix('"')) {
        Some(quoted) => quoted,
        None => user,
    };
    let mut plain = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => plain.push(chars.next()?),
            c => plain.push(c),
        }
    }
    let atext =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii();
    let dot_atom = !plain.is_empty()
        && plain
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext));
    dot_atom.then_some(plain)
}

/// True for an address a stranger may sign up with on the public form: a
/// domain name with a dot, not an IP literal (`root@[127.0.0.1]`) nor a
/// name with no dot (`victim@localhost`), which reach this machine or its
/// network rather than a mailbox on the internet.
pub fn is_public_address(canonical: &str) -> bool {
    let domain = canonical.rsplit_once('@').map_or("", |(_, d)| d);
    let domain = domain.trim_end_matches('.');
    // `127.1`, `0x7f.1`, `2130706433.x` are IPv4 addresses to resolvers: a
    // top-level label is never a number.
    let last = domain.rsplit('.').next().unwrap_or("");
    let numeric =
        last.bytes().all(|b| b.is_ascii_digit()) || last.to_ascii_lowercase().starts_with("0x");
    !domain.starts_with('[') && domain.contains('.') && !numeric
}

/// `NEWSLETTER_SECRET` (`from_env`) as the token secret, when it is set:
/// refused if it is shorter than [`MIN_SECRET_BYTES`].
///
/// `hex:` followed by hex digits gives the secret as bytes: the form a
/// store keeps its generated secret in (`settings.secret`), so the links
/// of a store can be kept working elsewhere (see README, "Moving a store").
pub fn env_secret(from_env: Option<&str>) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(text) = from_env.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let secret = match text.strip_prefix("hex:") {
        Some(digits) => hex::decode(digits.trim()).map_err(|_| StoreError::WeakSecret)?,
        None => text.as_bytes().to_vec(),
    };
    if secret.len() < MIN_SECRET_BYTES {
        return Err(StoreError::WeakSecret);
    }
    Ok(Some(secret))
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the store.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Readable by its owner only: SQLite would create it with the umask's mode.
        crate::atomic::create_private(path).map_err(|source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let error = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(error)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(error)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(error)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The store at `path` if there is one; `None`, and nothing created,
    /// when there is none yet (for commands that only look).
    pub fn open_existing(path: &Path) -> Result<Option<Store>, StoreError> {
        if path.exists() {
            Store::open(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The store at `path` opened only to read, as it is: no file is
    /// created, nothing is migrated, and no write lock is ever taken (for
    /// `build`, which may run as a user who can read the store but not
    /// write it). `None` when there is no store; an error when it cannot
    /// be read or is at another schema version than this build's.
    pub fn open_read_only(path: &Path) -> Result<Option<Store>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let error = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(error)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(error)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(error)?;
        if version != migrations::SCHEMA_VERSION {
            return Err(StoreError::OtherVersion {
                path: path.to_path_buf(),
                found: version,
            });
        }
        Ok(Some(Store {
            conn,
            path: path.to_path_buf(),
        }))
    }

    /// An empty store in memory, named `path` in messages: what a command
    /// that only looks sees where there is no store yet, without making one.
    pub fn empty_in_memory(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// How long a statement waits for another process's write lock before
    /// giving up with "database is locked" (10 s unless set): the server
    /// sets none, so no request waits while holding its one connection.
    pub fn set_busy_timeout(&self, wait: std::time::Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(wait).map_err(|e| self.error(e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `body` in one transaction, committed only if it succeeds.
    fn transaction<T>(
        &mut self,
        body: impl FnOnce(&Transaction<'_>) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        // IMMEDIATE: the write lock is taken at BEGIN, where the busy
        // timeout applies; a deferred transaction that reads first and then
        // must upgrade to write fails at once ("database is locked") when
        // another process writes meanwhile.
        let result = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .and_then(|tx| {
                let value = body(&tx)?;
                tx.commit()?;
                Ok(value)
            });
        result.map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    /// The HMAC secret for unsubscribe and confirm tokens: `from_env` when
    /// given, else one generated on first use and kept in the store.
    pub fn secret(&self, from_env: Option<&str>) -> Result<Vec<u8>, StoreError> {
        if let Some(secret) = self.existing_secret(from_env)? {
            return Ok(secret);
        }
        self.random_setting("secret", 32)?;
        self.secret(None)
    }

    /// This store's own random id, made on first use and kept: it makes
    /// the digests' `Message-ID`s differ from those of any other store.
    pub fn instance_id(&self) -> Result<String, StoreError> {
        self.random_setting("instance", 8)
    }

    /// The setting `key`, made on first use from `bytes` random bytes (in
    /// hex) and kept. Another process may make it at the same moment: the
    /// one stored first is the one every process gets.
    pub(super) fn random_setting(&self, key: &str, bytes: usize) -> Result<String, StoreError> {
        if let Some(value) = self.setting(key)? {
            return Ok(value);
        }
        let mut random = vec![0u8; bytes];
        getrandom::fill(&mut random).expect("the OS has a random source");
        self.conn
            .execute(
                "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)",
                [key, &hex::encode(random)],
            )
            .map_err(|e| self.error(e))?;
        Ok(self.setting(key)?.expect("just stored"))
    }

    /// The secret as [`Store::secret`] finds it, but `None` where that
    /// would make one: for commands that record nothing.
    pub fn existing_secret(&self, from_env: Option<&str>) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(secret) = env_secret(from_env)? {
            return Ok(Some(secret));
        }
        let stored: Option<String> = self
            .conn
            .query_row("SELECT value FROM settings WHERE key = 'secret'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.error(e))?;
        match stored.map(|hex_secret| hex::decode(&hex_secret)) {
            None => Ok(None),
            Some(Ok(secret)) if secret.len() >= MIN_SECRET_BYTES => Ok(Some(secret)),
            Some(_) => Err(StoreError::CorruptSecret {
                path: self.path.clone(),
            }),
        }
    }

    /// A value kept in the settings table.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Sets a value in the settings table.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// Removes a value from the settings table.
    pub fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM settings WHERE key = ?1", [key])
            .map(|_| ())
            .map_err(|e| self.error(e))
    }
}

/// Creates the database file readable by its owner only, before SQLite
/// What the unit tests of every store file start from.
#[cfg(test)]
mod testing {
    use super::*;

    /// A fixed "now", so stored timestamps are known.
    pub(super) fn now() -> DateTime<Utc> {
        "2026-11-25T09:00:00Z".parse().unwrap()
    }

    /// A fresh store in a temporary folder (kept while the `TempDir` lives).
    pub(super) fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.db")).unwrap();
        (dir, store)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::store;
    use super::*;

    #[test]
    fn emails_are_validated_and_their_domain_lowercased() {
        assert_eq!(
            normalize_email(" Jane.Doe@Example.ORG ").unwrap(),
            "Jane.Doe@example.org"
        );
        assert!(normalize_email("not-an-address").is_err());
        assert!(normalize_email("a@b@c").is_err());
    }

    #[test]
    fn the_file_is_private_and_versioned() {
        let (dir, store) = store();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("n.db"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        drop(store);
        let conn = Connection::open(dir.path().join("n.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Store::open(&dir.path().join("n.db"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("newer newsletter"), "{err}");
    }

    #[test]
    fn the_secret_is_made_once_and_kept() {
        let (_dir, store) = store();
        let first = store.secret(None).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(store.secret(None).unwrap(), first);
        assert_eq!(
            store.secret(Some("a-long-enough-secret")).unwrap(),
            b"a-long-enough-secret"
        );
        assert!(matches!(
            store.secret(Some("short")),
            Err(StoreError::WeakSecret)
        ));
    }
}

#[cfg(test)]
mod address_tests {
    use super::{is_public_address, normalize_email};

    #[test]
    fn one_mailbox_has_one_form() {
        for (typed, stored) in [
            ("victim@example.org", "victim@example.org"),
            ("\"victim\"@example.org", "victim@example.org"),
            ("\"\\victim\"@example.org", "victim@example.org"),
            (" Victim@EXAMPLE.org ", "Victim@example.org"),
            ("ann@Bücher.Example", "ann@xn--bcher-kva.example"),
            ("a.b+tag@example.org", "a.b+tag@example.org"),
        ] {
            assert_eq!(normalize_email(typed).as_deref(), Ok(stored), "{typed}");
        }
    }

    #[test]
    fn addresses_no_envelope_can_carry_are_refused() {
        for typed in [
            "\"vic tim\"@example.org",
            "\"a\\\"b\"@example.org",
            "nobody",
            "a@",
            "@x.org",
        ] {
            assert!(normalize_email(typed).is_err(), "{typed}");
        }
    }

    #[test]
    fn the_public_form_wants_a_domain_on_the_internet() {
        assert!(is_public_address("ann@example.org"));
        for canonical in [
            "root@[127.0.0.1]",
            "victim@localhost",
            "x@intranet.",
            "d@127.1",
            "d@127.0.0.1",
            "x@0x7f.1",
            "x@10.0x1",
        ] {
            assert!(!is_public_address(canonical), "{canonical}");
        }
    }
}

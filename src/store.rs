//! The SQLite store: subscribers, digests and the delivery ledger.
//!
//! One file (`store.path`), created with mode 0600, in WAL mode. Its schema
//! is versioned with `PRAGMA user_version`; `open` migrates an older file
//! and refuses a newer one. The ledger is what makes sending safe to repeat:
//! a digest and one `pending` delivery per active subscriber are written in
//! one transaction, and each delivery is marked `sent` or `failed` as soon as
//! the server has answered for it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

/// The shortest token secret accepted.
pub const MIN_SECRET_BYTES: usize = 16;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

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
        "NEWSLETTER_SECRET is shorter than {MIN_SECRET_BYTES} bytes: use a long random value, e.g. the output of `openssl rand -hex 32`"
    )]
    WeakSecret,
    #[error(
        "{path}: the stored token secret is damaged; set NEWSLETTER_SECRET, or delete the row `secret` of table `settings` (existing unsubscribe links stop working)"
    )]
    CorruptSecret { path: PathBuf },
    #[error(
        "{path} was written by a newer newsletter (schema {found}, this one knows {SCHEMA_VERSION}); upgrade newsletter"
    )]
    TooNew { path: PathBuf, found: i64 },
}

/// Where a subscriber stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Gets digests.
    Active,
    /// Signed up, has not confirmed yet.
    Pending,
    /// Left; the row stays so the address is never mailed again.
    Unsubscribed,
    /// The address does not take mail.
    Bounced,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Active,
        Status::Pending,
        Status::Unsubscribed,
        Status::Bounced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Pending => "pending",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One subscriber row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub status: Status,
    pub created_at: String,
}

/// What adding an address did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    New(i64),
    /// The address was already there; nothing changed.
    Exists(Subscriber),
}

/// What a confirmation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    Activated,
    AlreadyActive,
    /// The subscriber changed their mind after the link was sent.
    Stale,
    Unknown,
}

/// A digest as stored: rendered once, with merge tokens for what differs per subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDigest {
    pub id: i64,
    pub created_at: String,
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// A digest to create, and the posts it announces.
#[derive(Debug, Clone)]
pub struct NewDigest<'a> {
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    /// Permalinks of the posts it carries.
    pub posts: &'a [String],
    /// Permalinks of older posts to mark as announced without mailing them.
    pub skipped: &'a [String],
}

/// A delivery still to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub subscriber_id: i64,
    pub email: String,
    pub name: String,
    pub attempts: i64,
}

/// How one delivery attempt ended, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the server (its reply).
    Sent(String),
    /// Refused for good (the reason).
    Failed(String),
    /// A temporary failure: the delivery stays pending, one attempt more.
    Retry(String),
}

/// Delivery counts of one digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: usize,
    pub sent: usize,
    pub failed: usize,
    /// Subscribers who left after the digest was made: not mailed.
    pub cancelled: usize,
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

/// An address as the store keeps it: lettre-valid, domain lowercased.
pub fn normalize_email(text: &str) -> Result<String, String> {
    let address: lettre::Address = text
        .trim()
        .parse()
        .map_err(|e| format!("{:?} is not a valid email address ({e})", text.trim()))?;
    Ok(format!(
        "{}@{}",
        address.user(),
        address.domain().to_lowercase()
    ))
}

const MIGRATIONS: [&str; 2] = [
    r#"
CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('active', 'pending', 'unsubscribed', 'bounced')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX subscribers_status ON subscribers (status, id);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE digests (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    subject TEXT NOT NULL,
    html TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE announced (
    permalink TEXT PRIMARY KEY,
    digest_id INTEGER REFERENCES digests (id),
    announced_at TEXT NOT NULL
);
CREATE TABLE deliveries (
    digest_id INTEGER NOT NULL REFERENCES digests (id),
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reply TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (digest_id, subscriber_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_pending ON deliveries (status, digest_id, subscriber_id);
"#,
    // Addresses differing only in the case of their local part are one
    // mailbox in practice: look them up without regard to (ASCII) case.
    // Not UNIQUE, so a store that already has such a pair still opens.
    r#"
CREATE INDEX subscribers_email_nocase ON subscribers (email COLLATE NOCASE);
"#,
];

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the store.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_private(path)?;
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
        let result = self.conn.transaction().and_then(|tx| {
            let value = body(&tx)?;
            tx.commit()?;
            Ok(value)
        });
        result.map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.error(e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            self.transaction(|tx| {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", i as i64 + 1)
            })?;
        }
        Ok(())
    }

    /// The HMAC secret for unsubscribe and confirm tokens: `from_env` when
    /// given, else one generated on first use and kept in the store.
    pub fn secret(&self, from_env: Option<&str>) -> Result<Vec<u8>, StoreError> {
        if let Some(secret) = from_env.filter(|s| !s.is_empty()) {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(StoreError::WeakSecret);
            }
            return Ok(secret.as_bytes().to_vec());
        }
        let stored: Option<String> = self
            .conn
            .query_row("SELECT value FROM settings WHERE key = 'secret'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.error(e))?;
        if let Some(hex_secret) = stored {
            return match hex::decode(&hex_secret) {
                Ok(secret) if secret.len() >= MIN_SECRET_BYTES => Ok(secret),
                _ => Err(StoreError::CorruptSecret {
                    path: self.path.clone(),
                }),
            };
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS has a random source");
        // Another process may have won the race: keep whichever is stored.
        self.conn
            .execute(
                "INSERT OR IGNORE INTO settings (key, value) VALUES ('secret', ?1)",
                [hex::encode(bytes)],
            )
            .map_err(|e| self.error(e))?;
        self.secret(None)
    }

    /// Adds an address (already normalised) unless it is there.
    pub fn add_subscriber(
        &self,
        email: &str,
        name: &str,
        status: Status,
        now: DateTime<Utc>,
    ) -> Result<Added, StoreError> {
        add_subscriber(&self.conn, email, name, status, now).map_err(|e| self.error(e))
    }

    /// Adds many addresses in one transaction: all or nothing.
    pub fn add_subscribers<'r>(
        &mut self,
        rows: impl IntoIterator<Item = (&'r str, &'r str)>,
        status: Status,
        now: DateTime<Utc>,
    ) -> Result<Vec<Added>, StoreError> {
        self.transaction(|tx| {
            rows.into_iter()
                .map(|(email, name)| add_subscriber(tx, email, name, status, now))
                .collect()
        })
    }

    /// The subscriber with this (normalised) address.
    pub fn subscriber(&self, email: &str) -> Result<Option<Subscriber>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, email, name, status, created_at FROM subscribers \
                 WHERE email = ?1 COLLATE NOCASE ORDER BY id LIMIT 1",
                [email],
                subscriber_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// The subscriber with this id.
    pub fn subscriber_by_id(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, email, name, status, created_at FROM subscribers WHERE id = ?1",
                [id],
                subscriber_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Sets a subscriber's status; false when there is no such subscriber.
    pub fn set_status(
        &self,
        id: i64,
        status: Status,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE subscribers SET status = ?1, updated_at = ?2 WHERE id = ?3",
                params![status.as_str(), timestamp(now), id],
            )
            .map_err(|e| self.error(e))?;
        Ok(changed > 0)
    }

    /// Makes a subscriber who asked to join at `asked` active. A pending
    /// subscriber is confirmed; one who left (or bounced) only if nothing
    /// changed since `asked`, so an old confirmation link cannot undo a
    /// later unsubscribe.
    pub fn confirm(
        &self,
        id: i64,
        asked: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Confirmed, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE subscribers SET status = 'active', updated_at = ?1 WHERE id = ?2 \
                 AND (status = 'pending' OR (status IN ('unsubscribed', 'bounced') AND updated_at <= ?3))",
                params![timestamp(now), id, timestamp(asked)],
            )
            .map_err(|e| self.error(e))?;
        if changed > 0 {
            return Ok(Confirmed::Activated);
        }
        Ok(match self.subscriber_by_id(id)? {
            None => Confirmed::Unknown,
            Some(s) if s.status == Status::Active => Confirmed::AlreadyActive,
            Some(_) => Confirmed::Stale,
        })
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

    /// Calls `each` for every subscriber (of one status, or all), in id order,
    /// without loading them all at once.
    pub fn for_each_subscriber(
        &self,
        status: Option<Status>,
        mut each: impl FnMut(Subscriber),
    ) -> Result<(), StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT id, email, name, status, created_at FROM subscribers \
                 WHERE ?1 IS NULL OR status = ?1 ORDER BY id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([status.map(Status::as_str)], subscriber_row)
            .map_err(|e| self.error(e))?;
        for row in rows {
            each(row.map_err(|e| self.error(e))?);
        }
        Ok(())
    }

    /// How many subscribers have this status.
    pub fn count(&self, status: Status) -> Result<usize, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM subscribers WHERE status = ?1",
                [status.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.error(e))
    }

    /// Permalinks already carried by a digest or passed over by the first one.
    pub fn announced(&self) -> Result<HashSet<String>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT permalink FROM announced")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// True before the first digest is made.
    pub fn is_first_digest(&self) -> Result<bool, StoreError> {
        let any: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM announced LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.error(e))?;
        Ok(any.is_none())
    }

    /// The id the next digest will get (valid while the send lock is held).
    pub fn next_digest_id(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) + 1 FROM digests", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.error(e))
    }

    /// One digest.
    pub fn digest(&self, id: i64) -> Result<Option<StoredDigest>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, created_at, subject, html, text FROM digests WHERE id = ?1",
                [id],
                digest_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// The oldest digest that still has pending deliveries.
    pub fn unfinished_digest(&self) -> Result<Option<StoredDigest>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, created_at, subject, html, text FROM digests WHERE id = \
                 (SELECT min(digest_id) FROM deliveries WHERE status = 'pending')",
                [],
                digest_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Writes a digest, marks its posts (and the skipped ones) announced, and
    /// adds one pending delivery per active subscriber: all in one
    /// transaction. Returns the digest's id and how many deliveries it has.
    pub fn create_digest(
        &mut self,
        digest: &NewDigest<'_>,
        now: DateTime<Utc>,
    ) -> Result<(i64, usize), StoreError> {
        self.transaction(|tx| create_digest(tx, digest, now))
    }

    /// Up to `limit` pending deliveries of a digest to subscribers with ids
    /// above `after`, in id order. Deliveries to subscribers who are no
    /// longer active are cancelled on the way.
    pub fn pending(
        &self,
        digest_id: i64,
        after: i64,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Pending>, StoreError> {
        self.conn
            .execute(
                "UPDATE deliveries SET status = 'cancelled', updated_at = ?2 \
                 WHERE digest_id = ?1 AND status = 'pending' AND subscriber_id IN \
                 (SELECT id FROM subscribers WHERE status IN ('pending', 'unsubscribed', 'bounced'))",
                params![digest_id, timestamp(now)],
            )
            .map_err(|e| self.error(e))?;
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT d.subscriber_id, s.email, s.name, d.attempts FROM deliveries d \
                 JOIN subscribers s ON s.id = d.subscriber_id \
                 WHERE d.digest_id = ?1 AND d.status = 'pending' AND d.subscriber_id > ?2 \
                 ORDER BY d.subscriber_id LIMIT ?3",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![digest_id, after, limit as i64], |r| {
                Ok(Pending {
                    subscriber_id: r.get(0)?,
                    email: r.get(1)?,
                    name: r.get(2)?,
                    attempts: r.get(3)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Records the outcomes of several deliveries in one transaction (the
    /// delivery loop's group commit).
    pub fn record(
        &mut self,
        digest_id: i64,
        outcomes: &[(i64, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            let mut finish = tx.prepare_cached(
                "UPDATE deliveries SET status = ?3, attempts = attempts + 1, reply = ?4, updated_at = ?5 \
                 WHERE digest_id = ?1 AND subscriber_id = ?2 \
                 AND (status = 'pending' OR (status = 'cancelled' AND ?3 = 'sent'))",
            )?;
            for (subscriber_id, outcome) in outcomes {
                let (status, text) = match outcome {
                    Outcome::Sent(reply) => ("sent", reply),
                    Outcome::Failed(reason) => ("failed", reason),
                    Outcome::Retry(reason) => ("pending", reason),
                };
                finish.execute(params![digest_id, subscriber_id, status, text, timestamp(now)])?;
            }
            Ok(())
        })
    }

    /// Addresses a digest is still to go to (active subscribers with a
    /// pending delivery), without changing anything.
    pub fn pending_recipients(&self, digest_id: i64) -> Result<Vec<String>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id \
                 WHERE d.digest_id = ?1 AND d.status = 'pending' AND s.status = 'active' \
                 ORDER BY d.subscriber_id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([digest_id], |r| r.get::<_, String>(0))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// How many posts a digest carries.
    pub fn digest_posts(&self, digest_id: i64) -> Result<usize, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM announced WHERE digest_id = ?1",
                [digest_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.error(e))
    }

    /// Delivery counts of a digest.
    pub fn counts(&self, digest_id: i64) -> Result<Counts, StoreError> {
        let mut counts = Counts::default();
        let mut statement = self
            .conn
            .prepare("SELECT status, count(*) FROM deliveries WHERE digest_id = ?1 GROUP BY status")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([digest_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(|e| self.error(e))?;
        for row in rows {
            let (status, n) = row.map_err(|e| self.error(e))?;
            match status.as_str() {
                "pending" => counts.pending = n,
                "sent" => counts.sent = n,
                "failed" => counts.failed = n,
                _ => counts.cancelled = n,
            }
        }
        Ok(counts)
    }
}

fn add_subscriber(
    conn: &Connection,
    email: &str,
    name: &str,
    status: Status,
    now: DateTime<Utc>,
) -> Result<Added, rusqlite::Error> {
    // `Ann@x.org` is there already if `ann@x.org` is (local parts are
    // case-sensitive by the letter of RFC 5321, never in practice).
    let existing = conn
        .prepare_cached(
            "SELECT id, email, name, status, created_at FROM subscribers \
             WHERE email = ?1 COLLATE NOCASE ORDER BY id LIMIT 1",
        )?
        .query_row([email], subscriber_row)
        .optional()?;
    if let Some(subscriber) = existing {
        return Ok(Added::Exists(subscriber));
    }
    conn.prepare_cached(
        "INSERT INTO subscribers (email, name, status, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![email, name, status.as_str(), timestamp(now)])?;
    Ok(Added::New(conn.last_insert_rowid()))
}

fn create_digest(
    tx: &Transaction<'_>,
    digest: &NewDigest<'_>,
    now: DateTime<Utc>,
) -> Result<(i64, usize), rusqlite::Error> {
    let at = timestamp(now);
    tx.execute(
        "INSERT INTO digests (created_at, subject, html, text) VALUES (?1, ?2, ?3, ?4)",
        params![at, digest.subject, digest.html, digest.text],
    )?;
    let id = tx.last_insert_rowid();
    for permalink in digest.posts {
        tx.execute(
            "INSERT OR IGNORE INTO announced (permalink, digest_id, announced_at) VALUES (?1, ?2, ?3)",
            params![permalink, id, at],
        )?;
    }
    for permalink in digest.skipped {
        tx.execute(
            "INSERT OR IGNORE INTO announced (permalink, digest_id, announced_at) VALUES (?1, NULL, ?2)",
            params![permalink, at],
        )?;
    }
    let deliveries = tx.execute(
        "INSERT INTO deliveries (digest_id, subscriber_id, status, updated_at) \
         SELECT ?1, id, 'pending', ?2 FROM subscribers WHERE status = 'active'",
        params![id, at],
    )?;
    Ok((id, deliveries))
}

fn digest_row(r: &rusqlite::Row<'_>) -> Result<StoredDigest, rusqlite::Error> {
    Ok(StoredDigest {
        id: r.get(0)?,
        created_at: r.get(1)?,
        subject: r.get(2)?,
        html: r.get(3)?,
        text: r.get(4)?,
    })
}

fn subscriber_row(row: &rusqlite::Row<'_>) -> Result<Subscriber, rusqlite::Error> {
    let status: String = row.get(3)?;
    Ok(Subscriber {
        id: row.get(0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        status: Status::parse(&status).unwrap_or(Status::Unsubscribed),
        created_at: row.get(4)?,
    })
}

/// Creates the database file readable by its owner only, before SQLite
/// opens it (SQLite would create it with the umask's mode).
fn create_private(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(|_| ())
        .map_err(|source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T09:00:00Z".parse().unwrap()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.db")).unwrap();
        (dir, store)
    }

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
    fn an_address_differing_only_in_case_is_the_same_subscriber() {
        let (_dir, mut store) = store();
        let now = Utc::now();
        let Added::New(id) = store
            .add_subscriber("Ann@x.org", "", Status::Active, now)
            .unwrap()
        else {
            panic!("first add is new");
        };
        let again = store
            .add_subscriber("ann@x.org", "", Status::Pending, now)
            .unwrap();
        assert!(matches!(again, Added::Exists(ref s) if s.id == id && s.email == "Ann@x.org"));
        let batch = store
            .add_subscribers([("ANN@x.org", "")], Status::Active, now)
            .unwrap();
        assert!(matches!(batch[0], Added::Exists(ref s) if s.id == id));
        assert_eq!(
            store.subscriber("aNN@x.org").unwrap().map(|s| s.id),
            Some(id)
        );
        assert_eq!(store.count(Status::Active).unwrap(), 1);
    }

    #[test]
    fn a_duplicate_is_reported_not_added() {
        let (_dir, store) = store();
        let Added::New(id) = store
            .add_subscriber("a@x.org", "A", Status::Active, now())
            .unwrap()
        else {
            panic!("not new");
        };
        match store
            .add_subscriber("a@x.org", "Other", Status::Active, now())
            .unwrap()
        {
            Added::Exists(s) => assert_eq!((s.id, s.name.as_str()), (id, "A")),
            other => panic!("{other:?}"),
        }
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

    #[test]
    fn a_digest_gets_one_pending_delivery_per_active_subscriber() {
        let (_dir, mut store) = store();
        for (email, status) in [
            ("a@x.org", Status::Active),
            ("b@x.org", Status::Pending),
            ("c@x.org", Status::Active),
            ("d@x.org", Status::Unsubscribed),
        ] {
            store.add_subscriber(email, "", status, now()).unwrap();
        }
        assert!(store.is_first_digest().unwrap());
        let posts = vec!["/p/1/".to_string()];
        let skipped = vec!["/p/0/".to_string()];
        let (id, n) = store
            .create_digest(
                &NewDigest {
                    subject: "S",
                    html: "H",
                    text: "T",
                    posts: &posts,
                    skipped: &skipped,
                },
                now(),
            )
            .unwrap();
        assert_eq!(n, 2);
        assert!(!store.is_first_digest().unwrap());
        assert_eq!(store.announced().unwrap().len(), 2);
        assert_eq!(store.unfinished_digest().unwrap().unwrap().id, id);

        let pending = store.pending(id, 0, 10, now()).unwrap();
        assert_eq!(
            pending.iter().map(|p| p.email.as_str()).collect::<Vec<_>>(),
            ["a@x.org", "c@x.org"]
        );
        let sent = Outcome::Sent("250 ok".into());
        store
            .record(id, &[(pending[0].subscriber_id, sent)], now())
            .unwrap();
        // c leaves before their message goes out: cancelled, not mailed.
        let c = store.subscriber("c@x.org").unwrap().unwrap();
        store.set_status(c.id, Status::Unsubscribed, now()).unwrap();
        assert!(store.pending(id, 0, 10, now()).unwrap().is_empty());
        assert_eq!(
            store.counts(id).unwrap(),
            Counts {
                pending: 0,
                sent: 1,
                failed: 0,
                cancelled: 1
            }
        );
        assert!(store.unfinished_digest().unwrap().is_none());
    }

    #[test]
    fn a_transient_failure_stays_pending_and_a_permanent_one_does_not() {
        let (_dir, mut store) = store();
        store
            .add_subscriber("a@x.org", "", Status::Active, now())
            .unwrap();
        store
            .add_subscriber("b@x.org", "", Status::Active, now())
            .unwrap();
        let (id, _) = store
            .create_digest(
                &NewDigest {
                    subject: "S",
                    html: "H",
                    text: "T",
                    posts: &[],
                    skipped: &[],
                },
                now(),
            )
            .unwrap();
        let p = store.pending(id, 0, 10, now()).unwrap();
        let outcomes = [
            (p[0].subscriber_id, Outcome::Retry("451 later".into())),
            (
                p[1].subscriber_id,
                Outcome::Failed("550 no such user".into()),
            ),
        ];
        store.record(id, &outcomes, now()).unwrap();
        let p = store.pending(id, 0, 10, now()).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].attempts, 1);
        // A delivery already final is not changed by a late mark.
        store
            .record(id, &[(2, Outcome::Sent("250".into()))], now())
            .unwrap();
        assert_eq!(store.counts(id).unwrap().failed, 1);
    }
}

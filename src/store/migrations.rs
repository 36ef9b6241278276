//! The schema, as numbered migrations.
//!
//! Migration `i` takes a store from `PRAGMA user_version` `i` to `i + 1`,
//! in one transaction with the version bump, so an interrupted upgrade
//! resumes where it stopped. Stores in use have run the earlier entries,
//! so a schema change is a new entry at the end, not an edit.

use super::{Store, StoreError};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 6;

// Sized by SCHEMA_VERSION so that a migration added without bumping the
// version (which would make the next `open` refuse the store as too new)
// does not compile.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
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
    // An announced post is known by its file (`source`, under content.dir),
    // which stays when its permalink changes; rows from before have none
    // until a digest finds their post by the permalink they hold.
    r#"
CREATE TABLE announced_posts (
    id INTEGER PRIMARY KEY,
    source TEXT UNIQUE,
    permalink TEXT NOT NULL,
    digest_id INTEGER REFERENCES digests (id),
    announced_at TEXT NOT NULL
);
INSERT INTO announced_posts (permalink, digest_id, announced_at)
    SELECT permalink, digest_id, announced_at FROM announced ORDER BY rowid;
DROP TABLE announced;
ALTER TABLE announced_posts RENAME TO announced;
CREATE INDEX announced_digest ON announced (digest_id);
"#,
    // Links in mail name a subscriber by `key`, which travels with them in
    // an export, not by the row id, which another store gives to someone
    // else. A row from before keeps its id as its key, so the links already
    // mailed keep working (in this store, and in one it is moved to).
    // `forgotten`: salted hashes of erased addresses, never imported again.
    r#"
ALTER TABLE subscribers ADD COLUMN key TEXT;
UPDATE subscribers SET key = CAST(id AS TEXT);
CREATE UNIQUE INDEX subscribers_key ON subscribers (key);
CREATE TABLE forgotten (
    hash TEXT PRIMARY KEY,
    forgotten_at TEXT NOT NULL
);
"#,
    // The name typed into each sign-up, kept until its link is confirmed
    // (then it becomes the subscriber's name) or expires; `expires` is the
    // one in that sign-up's confirmation token.
    r#"
CREATE TABLE signup_names (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    expires INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, expires)
) WITHOUT ROWID;
"#,
    // An announced post's own date: a new post written at the file name of
    // an older one (a different date) is not taken for it.
    r#"
ALTER TABLE announced ADD COLUMN published TEXT;
"#,
];

impl Store {
    /// Brings the schema up to [`SCHEMA_VERSION`]; refuses a store written
    /// by a newer build rather than guess at its tables.
    pub(super) fn migrate(&mut self) -> Result<(), StoreError> {
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
}

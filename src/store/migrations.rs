//! The schema, as numbered migrations.
//!
//! Migration `i` takes a store from `PRAGMA user_version` `i` to `i + 1`,
//! in one transaction with the version bump, so an interrupted upgrade
//! resumes where it stopped. Stores in use have run the earlier entries,
//! so a schema change is a new entry at the end, not an edit.

use super::{Store, StoreError};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 8;

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
    // One mailbox, one row: addresses are kept in one form from now on
    // (`super::normalize_email`); rows that are one mailbox typed several
    // ways are merged by `merge_spellings`, run with this step. The keys
    // of merged rows stay as aliases, so links mailed to them still work.
    r#"
CREATE TABLE subscriber_aliases (
    key TEXT PRIMARY KEY,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE
) WITHOUT ROWID;
"#,
    // When each sign-up was made: a confirmation is weighed against it, not
    // against a time worked out from the link's expiry and today's
    // `confirm_ttl` (which may have changed since).
    r#"
ALTER TABLE signup_names ADD COLUMN asked TEXT;
"#,
];

/// The step whose SQL is followed by [`merge_spellings`].
const MERGE_STEP: usize = 6;

/// Merges the rows that are one mailbox typed several ways (`"ann"@x.org`,
/// `ann@X.org`) into the oldest, and gives every address its one form. A
/// suppressed status wins (unsubscribed, then bounced, over active, over
/// pending); of two deliveries of one digest the one that went out is
/// kept, and two pending ones become one; the other rows' keys become
/// aliases of the kept row. An address that cannot be put in one form (no
/// mail reaches it) is left as it is.
fn merge_spellings(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let rows: Vec<(i64, String, String)> = tx
        .prepare("SELECT id, email, status FROM subscribers ORDER BY id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut groups: std::collections::BTreeMap<String, Vec<(i64, String, String)>> =
        std::collections::BTreeMap::new();
    for (id, email, status) in rows {
        let Ok(canonical) = super::normalize_email(&email) else {
            continue;
        };
        groups
            .entry(canonical.to_ascii_lowercase())
            .or_default()
            .push((id, canonical, status));
    }
    let rank = |status: &str| match status {
        "unsubscribed" => 3,
        "bounced" => 2,
        "active" => 1,
        _ => 0,
    };
    for rows in groups.values() {
        let (keep, canonical, _) = &rows[0];
        let status = rows
            .iter()
            .map(|(_, _, s)| s.as_str())
            .max_by_key(|s| rank(s))
            .unwrap_or("pending");
        for (other, _, _) in &rows[1..] {
            // Deliveries of one digest to both: keep the one that went out.
            tx.execute(
                "UPDATE deliveries SET status = 'sent', reply = o.reply, updated_at = o.updated_at \
                 FROM (SELECT digest_id, reply, updated_at FROM deliveries \
                       WHERE subscriber_id = ?2 AND status = 'sent') AS o \
                 WHERE deliveries.subscriber_id = ?1 AND deliveries.digest_id = o.digest_id \
                 AND deliveries.status <> 'sent'",
                [keep, other],
            )?;
            tx.execute(
                "DELETE FROM deliveries WHERE subscriber_id = ?2 AND digest_id IN \
                 (SELECT digest_id FROM deliveries WHERE subscriber_id = ?1)",
                [keep, other],
            )?;
            tx.execute(
                "UPDATE deliveries SET subscriber_id = ?1 WHERE subscriber_id = ?2",
                [keep, other],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO subscriber_aliases (key, subscriber_id) \
                 SELECT key, ?1 FROM subscribers WHERE id = ?2 AND key IS NOT NULL",
                [keep, other],
            )?;
            tx.execute(
                "UPDATE subscriber_aliases SET subscriber_id = ?1 WHERE subscriber_id = ?2",
                [keep, other],
            )?;
            tx.execute("DELETE FROM signup_names WHERE subscriber_id = ?1", [other])?;
            tx.execute("DELETE FROM subscribers WHERE id = ?1", [other])?;
        }
        tx.execute(
            "UPDATE subscribers SET email = ?1, status = ?2 WHERE id = ?3",
            rusqlite::params![canonical, status, keep],
        )?;
    }
    Ok(())
}

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
                if i == MERGE_STEP {
                    merge_spellings(tx)?;
                }
                tx.pragma_update(None, "user_version", i as i64 + 1)
            })?;
        }
        Ok(())
    }
}

//! The schema, as numbered migrations.
//!
//! Migration `i` takes a store from `PRAGMA user_version` `i` to `i + 1`,
//! in one transaction with the version bump, so an interrupted upgrade
//! resumes where it stopped. Stores in use have run the earlier entries,
//! so a schema change is a new entry at the end, not an edit.

use super::{Store, StoreError};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 11;

/// The schema steps, oldest first: step `i` takes a store from version `i`
/// to `i + 1` (step 6 is followed by `merge_spellings`). Public so that
/// tests can make a store as each earlier version left it.
// Sized by SCHEMA_VERSION so that a migration added without bumping the
// version (which would make the next `open` refuse the store as too new)
// does not compile.
pub const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
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
    // A new status, `complained` (a spam report): SQLite cannot change a
    // CHECK in place, so the table is made anew (with foreign keys off for
    // this step, see `migrate`, so dropping the old one cascades nothing).
    // `bounces`: every report read (bounce, complaint, mailed unsubscribe),
    // once each: `identity` is what makes a report the same report read
    // twice (its Message-ID, else a hash of it).
    r#"
CREATE TABLE subscribers_new (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL
        CHECK (status IN ('active', 'pending', 'unsubscribed', 'bounced', 'complained')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    key TEXT
);
INSERT INTO subscribers_new (id, email, name, status, created_at, updated_at, key)
    SELECT id, email, name, status, created_at, updated_at, key FROM subscribers;
DROP TABLE subscribers;
ALTER TABLE subscribers_new RENAME TO subscribers;
CREATE INDEX subscribers_status ON subscribers (status, id);
CREATE INDEX subscribers_email_nocase ON subscribers (email COLLATE NOCASE);
CREATE UNIQUE INDEX subscribers_key ON subscribers (key);
CREATE TABLE bounces (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL UNIQUE,
    subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE CASCADE,
    digest_id INTEGER REFERENCES digests (id),
    kind TEXT NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint', 'unsubscribe')),
    status TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    recipient TEXT NOT NULL DEFAULT '',
    received_at TEXT NOT NULL,
    trusted INTEGER NOT NULL DEFAULT 0,
    read_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX bounces_subscriber ON bounces (subscriber_id, received_at);
CREATE INDEX bounces_digest ON bounces (digest_id, kind);
"#,
    // Mailings: a digest of excerpts, or a letter (one post sent whole);
    // one numbered sequence. The archive lists the titles of the posts a
    // mailing carried. A welcome mail, one per subscriber, has its own
    // ledger, so it goes out while a mailing does. `page` is a mailing's
    // archive page (none for those made before); `email_only` marks a
    // post whose only page on the web is its mailing's.
    r#"
ALTER TABLE digests ADD COLUMN kind TEXT NOT NULL DEFAULT 'digest' CHECK (kind IN ('digest', 'letter'));
ALTER TABLE digests ADD COLUMN page TEXT;
ALTER TABLE announced ADD COLUMN title TEXT;
ALTER TABLE announced ADD COLUMN email_only INTEGER NOT NULL DEFAULT 0;
CREATE TABLE welcomes (
    subscriber_id INTEGER PRIMARY KEY REFERENCES subscribers (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reply TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX welcomes_pending ON welcomes (status, subscriber_id);
"#,
    // Topics. `subscribers.topics`: the keys a reader chose, comma
    // separated (NULL: never chose, so every topic); `signup_names.topics`
    // the same for a sign-up until it is confirmed. `choices`: what each
    // reader's copy of a mailing carries, fixed when it is made (choice 0
    // is the whole mailing): the positions of its posts, how many of them
    // are shown whole, and the subject and preheader that name its first
    // one. A delivery names its choice (NULL for mailings from before,
    // sent whole); one whose choice is empty is `skipped`: a new status,
    // so the table is made anew (with foreign keys off, see `migrate`).
    r#"
ALTER TABLE subscribers ADD COLUMN topics TEXT;
ALTER TABLE signup_names ADD COLUMN topics TEXT;
CREATE TABLE choices (
    digest_id INTEGER NOT NULL REFERENCES digests (id),
    id INTEGER NOT NULL,
    posts TEXT NOT NULL,
    cards INTEGER NOT NULL,
    subject TEXT NOT NULL,
    preheader TEXT NOT NULL,
    PRIMARY KEY (digest_id, id)
) WITHOUT ROWID;
CREATE TABLE deliveries_new (
    digest_id INTEGER NOT NULL REFERENCES digests (id),
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'cancelled', 'skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reply TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    choice INTEGER,
    PRIMARY KEY (digest_id, subscriber_id)
) WITHOUT ROWID;
INSERT INTO deliveries_new (digest_id, subscriber_id, status, attempts, reply, updated_at)
    SELECT digest_id, subscriber_id, status, attempts, reply, updated_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_pending ON deliveries (status, digest_id, subscriber_id);
"#,
];

/// The step that makes `subscribers` anew, run with foreign keys off.
const REBUILD_STEP: usize = 8;

/// The step that makes `deliveries` anew, run with foreign keys off too.
const DELIVERIES_REBUILD_STEP: usize = 10;

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
            // `PRAGMA foreign_keys` is a no-op inside a transaction: set it
            // around the step. The rows keep their ids, so every reference
            // to them holds as it did.
            let rebuild = i == REBUILD_STEP || i == DELIVERIES_REBUILD_STEP;
            if rebuild {
                self.conn
                    .pragma_update(None, "foreign_keys", false)
                    .map_err(|e| self.error(e))?;
            }
            let done = self.transaction(|tx| {
                // Another process opening the same old store may have run
                // this step while this one waited for the write lock.
                let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                if now > i as i64 {
                    return Ok(());
                }
                tx.execute_batch(sql)?;
                if i == MERGE_STEP {
                    merge_spellings(tx)?;
                }
                tx.pragma_update(None, "user_version", i as i64 + 1)
            });
            if rebuild {
                self.conn
                    .pragma_update(None, "foreign_keys", true)
                    .map_err(|e| self.error(e))?;
            }
            done?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// A store left at schema 8 by the build before `complained`, with a
    /// subscriber whose rows in other tables refer to it.
    fn schema_8_store(path: &std::path::Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        for sql in &MIGRATIONS[..REBUILD_STEP] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO subscribers (id, email, name, status, created_at, updated_at, key) \
               VALUES (7, 'ann@x.org', 'Ann', 'bounced', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', 'ab12');
             INSERT INTO digests VALUES (1, '2026-11-01T00:00:00Z', 'S', 'h', 't');
             INSERT INTO deliveries VALUES (1, 7, 'sent', 1, '250 ok', '2026-11-01T00:00:00Z');
             INSERT INTO signup_names VALUES (7, 99, 'Ann R', '2026-11-01T00:00:00Z');
             INSERT INTO subscriber_aliases VALUES ('cd34', 7);
             PRAGMA user_version = 8;",
        )
        .unwrap();
    }

    #[test]
    fn the_rebuild_for_complained_keeps_every_row_that_refers_to_a_subscriber() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newsletter.db");
        schema_8_store(&path);
        let store = Store::open(&path).unwrap();
        let count = |table: &str| -> i64 {
            store
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        // Dropping the old table with foreign keys on would have cascaded.
        for table in [
            "subscribers",
            "deliveries",
            "signup_names",
            "subscriber_aliases",
        ] {
            assert_eq!(count(table), 1, "{table}");
        }
        let row: (String, String, String, String) = store
            .conn
            .query_row(
                "SELECT email, name, status, key FROM subscribers WHERE id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (
                "ann@x.org".into(),
                "Ann".into(),
                "bounced".into(),
                "ab12".into()
            )
        );
        // The new status is allowed, nonsense still is not, and foreign
        // keys are enforced again.
        store
            .conn
            .execute(
                "UPDATE subscribers SET status = 'complained' WHERE id = 7",
                [],
            )
            .unwrap();
        assert!(
            store
                .conn
                .execute("UPDATE subscribers SET status = 'gone' WHERE id = 7", [])
                .is_err()
        );
        assert!(
            store
                .conn
                .execute("INSERT INTO subscriber_aliases VALUES ('ef56', 12345)", [])
                .is_err()
        );
        drop(store);
        // Opened again: nothing left to do.
        Store::open(&path).unwrap();
    }
}

//! Subscribers: who is on the list and where each one stands.
//!
//! A row gets its status when it is added; after that it changes only
//! through `Store::change_status`, which the CLI and the server both call.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError, timestamp};

/// Where a subscriber stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Gets digests.
    Active,
    /// Signed up, has not confirmed yet.
    Pending,
    /// Left; the row stays so the address is never mailed again.
    Unsubscribed,
    /// The address does not take mail: a hard bounce, or soft bounces
    /// past `bounces.soft_limit`.
    Bounced,
    /// The person reported a message as spam (a feedback report): never
    /// mailed again, like `Unsubscribed`, and kept apart so a list's
    /// complaint rate can be seen.
    Complained,
}

impl Status {
    /// Every status, in the order the CLI lists them.
    pub const ALL: [Status; 5] = [
        Status::Active,
        Status::Pending,
        Status::Unsubscribed,
        Status::Bounced,
        Status::Complained,
    ];

    /// The status as the `status` column stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Pending => "pending",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
            Status::Complained => "complained",
        }
    }

    /// Kept out of all mail until an explicit reactivation or a new
    /// confirmed sign-up: unsubscribed, bounced, complained.
    pub fn is_suppressed(self) -> bool {
        matches!(
            self,
            Status::Unsubscribed | Status::Bounced | Status::Complained
        )
    }

    /// The status stored as `text`, if it is one.
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
    /// What the links in their mail name them by: random, or the row id
    /// for rows from before keys (see [`is_key`]). Exported with them.
    pub key: String,
    /// The topic keys they chose, comma separated; `None`: they never
    /// chose, so they get every topic (see `crate::topics`).
    pub topics: Option<String>,
}

/// An address an import brings: what the file says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Normalised.
    pub email: String,
    pub name: String,
    pub status: Status,
    /// From the file (an export of this tool); a new one when it is
    /// missing, malformed or taken.
    pub key: Option<String>,
    /// From the file, as stored; else the import's time.
    pub created_at: Option<String>,
    /// From the file's `topics` column, as stored (see
    /// [`Subscriber::topics`]); `None`: every topic.
    pub topics: Option<String>,
}

/// What importing one row did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    New,
    /// Added, but under a new key: the file's was malformed or taken
    /// (links mailed with it name someone else, or no one, here).
    NewWithNewKey,
    /// Already there, left as it was.
    Exists,
    /// Already there, and the file says it left or bounced: so it is now.
    Suppressed(Status),
    /// Erased with `subscribers remove --forget`: not imported.
    Forgotten,
}

/// True for a well-formed subscriber key: 1 to 64 lowercase hex digits
/// (a row id in decimal is one). The sample keys of trials (`preview`,
/// `test`) are not, so their links name no one.
pub fn is_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new random key (80 bits, hex).
fn new_key() -> String {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).expect("the OS has a random source");
    hex::encode(bytes)
}

/// What adding an address did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new row, with this id.
    New(i64),
    /// The address was already there; nothing changed.
    Exists(Subscriber),
}

/// A change of a subscriber's status, named by who asks for it.
///
/// Adding an address is not one: a new row gets its first status
/// ([`Store::add_subscriber`]) and an address already there is left as it
/// is. Every later change goes through [`Store::change_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// The subscriber asked to leave (the unsubscribe page, the one-click
    /// POST, a mailed request): active, pending or bounced becomes
    /// unsubscribed. Asking again writes nothing (unlike `Remove`): the row
    /// keeps the time it first left; complained stays complained.
    Unsubscribe,
    /// The admin removed the address (`subscribers remove`): it becomes
    /// unsubscribed and is restamped even if it already was, so a
    /// confirmation link sent before the removal is stale afterwards.
    Remove,
    /// The subscriber followed a confirmation link for a sign-up made at
    /// `asked`. A pending subscriber becomes active; one who left or
    /// bounced or complained only if nothing changed since `asked`, so an
    /// old link cannot undo a later unsubscribe.
    Confirm { asked: DateTime<Utc> },
    /// The admin made the address active again (`subscribers
    /// reactivate`), whatever it was: the one way besides a new confirmed
    /// sign-up out of a suppressed status.
    Reactivate,
}

/// What a [`StatusChange`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// The status is now the one asked for.
    Done,
    /// It already was (unsubscribed, or active for a confirmation); nothing
    /// was written. Never the answer to [`StatusChange::Remove`].
    Already,
    /// A confirmation refused: the subscriber changed their mind after the
    /// link was sent.
    Stale,
    /// No subscriber has this id.
    Unknown,
}

impl Store {
    /// Adds an address (already normalised) unless it is there.
    pub fn add_subscriber(
        &self,
        email: &str,
        name: &str,
        status: Status,
        now: DateTime<Utc>,
    ) -> Result<Added, StoreError> {
        let added = add_subscriber(&self.conn, email, name, status, None, now)
            .map_err(|e| self.error(e))?;
        if matches!(added, Added::New(_)) {
            self.unforget(email)?;
        }
        Ok(added)
    }

    /// An address added back by hand or by the person's own sign-up: no
    /// longer kept out of imports.
    pub(super) fn unforget(&self, email: &str) -> Result<(), StoreError> {
        let salt = self.forget_salt()?;
        self.conn
            .execute(
                "DELETE FROM forgotten WHERE hash = ?1",
                [forget_hash(&salt, email)],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
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
                .map(|(email, name)| add_subscriber(tx, email, name, status, None, now))
                .collect()
        })
    }

    /// The subscriber with this (normalised) address.
    pub fn subscriber(&self, email: &str) -> Result<Option<Subscriber>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, email, name, status, created_at, key, topics FROM subscribers \
                 WHERE email = ?1 COLLATE NOCASE ORDER BY id LIMIT 1",
                [email],
                subscriber_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// The subscriber a link names by `key`: their own, or that of a row
    /// merged into theirs (one mailbox typed two ways, see migrations).
    pub fn subscriber_by_key(&self, key: &str) -> Result<Option<Subscriber>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, email, name, status, created_at, key, topics FROM subscribers WHERE key = ?1 \
                 UNION ALL SELECT s.id, s.email, s.name, s.status, s.created_at, s.key, s.topics \
                 FROM subscriber_aliases a JOIN subscribers s ON s.id = a.subscriber_id \
                 WHERE a.key = ?1 LIMIT 1",
                [key],
                subscriber_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Imports `rows` in one transaction: all or nothing. A new address is
    /// added with the file's status, name, key and date; an address already
    /// there is left as it is, except that one the file says left or
    /// bounced becomes so (an import never makes anyone active again); an
    /// erased address ([`Store::forget`]) is skipped.
    pub fn import_subscribers(
        &mut self,
        rows: &[ImportRow],
        now: DateTime<Utc>,
    ) -> Result<Vec<Imported>, StoreError> {
        let salt = self.forget_salt()?;
        self.transaction(|tx| {
            let mut done = Vec::with_capacity(rows.len());
            for row in rows {
                if let Some(existing) = find(tx, &row.email)? {
                    let suppress = row.status.is_suppressed()
                        && matches!(existing.status, Status::Active | Status::Pending);
                    if suppress {
                        tx.prepare_cached(
                            "UPDATE subscribers SET status = ?1, updated_at = ?2 WHERE id = ?3",
                        )?
                        .execute(params![
                            row.status.as_str(),
                            timestamp(now),
                            existing.id
                        ])?;
                        done.push(Imported::Suppressed(row.status));
                    } else {
                        done.push(Imported::Exists);
                    }
                    continue;
                }
                // Erased, and not added back since: not imported.
                let forgotten: Option<i64> = tx
                    .prepare_cached("SELECT 1 FROM forgotten WHERE hash = ?1")?
                    .query_row([forget_hash(&salt, &row.email)], |r| r.get(0))
                    .optional()?;
                if forgotten.is_some() {
                    done.push(Imported::Forgotten);
                    continue;
                }
                let (key, kept) = match &row.key {
                    Some(key) if is_key(key) && !key_taken(tx, key)? => (key.clone(), true),
                    Some(_) => (new_key(), false),
                    None => (new_key(), true),
                };
                let created = row.created_at.clone().unwrap_or_else(|| timestamp(now));
                tx.prepare_cached(
                    "INSERT INTO subscribers (email, name, status, created_at, updated_at, key, \
                     topics) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    row.email,
                    row.name,
                    row.status.as_str(),
                    created,
                    timestamp(now),
                    key,
                    row.topics
                ])?;
                done.push(if kept {
                    Imported::New
                } else {
                    Imported::NewWithNewKey
                });
            }
            Ok(done)
        })
    }

    /// Erases a subscriber (GDPR): their row and every ledger entry about
    /// them (their welcome too) go, in one transaction, and only a salted hash of the address
    /// stays, so an import never brings it back by mistake.
    ///
    /// SQLite's `secure_delete` zeroes the freed space, and the write-ahead
    /// log is checkpointed and truncated afterwards, so the address is not
    /// left in the file's free pages or in the log.
    pub fn forget(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let salt = self.forget_salt()?;
        self.conn
            .pragma_update(None, "secure_delete", true)
            .map_err(|e| self.error(e))?;
        let forgotten = self.transaction(|tx| {
            let email: Option<String> = tx
                .query_row("SELECT email FROM subscribers WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(email) = email else {
                return Ok(false);
            };
            tx.execute("DELETE FROM deliveries WHERE subscriber_id = ?1", [id])?;
            tx.execute("DELETE FROM welcomes WHERE subscriber_id = ?1", [id])?;
            tx.execute("DELETE FROM subscribers WHERE id = ?1", [id])?;
            tx.execute(
                "INSERT OR REPLACE INTO forgotten (hash, forgotten_at) VALUES (?1, ?2)",
                params![forget_hash(&salt, &email), timestamp(now)],
            )?;
            Ok(true)
        })?;
        // Best effort: a reader in another process keeps the log until it
        // is done, and the next checkpoint then removes it.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(forgotten)
    }

    /// True when `email` was erased with [`Store::forget`].
    pub fn is_forgotten(&self, email: &str) -> Result<bool, StoreError> {
        let salt = self.forget_salt()?;
        self.conn
            .query_row(
                "SELECT 1 FROM forgotten WHERE hash = ?1",
                [forget_hash(&salt, email)],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| self.error(e))
    }

    /// The store's own salt for [`forget_hash`], made on first use.
    fn forget_salt(&self) -> Result<String, StoreError> {
        self.random_setting("forget_salt", 16)
    }

    /// Keeps the name typed into a sign-up until its link is confirmed,
    /// and drops those of links that have expired by `now`. The link's
    /// expiry (Unix seconds) names the sign-up, so each sign-up of one
    /// subscriber gets its own: `expires`, or a second later than the
    /// latest one kept (two sign-ups in one second). Returns it, for the
    /// link.
    pub fn remember_signup_name(
        &self,
        id: i64,
        expires: i64,
        name: &str,
        topics: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "DELETE FROM signup_names WHERE expires < ?1",
                [now.timestamp()],
            )
            .map_err(|e| self.error(e))?;
        let latest: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(expires) FROM signup_names WHERE subscriber_id = ?1",
                [id],
                |r| r.get(0),
            )
            .map_err(|e| self.error(e))?;
        let expires = latest.map_or(expires, |latest| expires.max(latest + 1));
        self.conn
            .execute(
                "INSERT INTO signup_names (subscriber_id, expires, name, asked, topics) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, expires, name, timestamp(now), topics],
            )
            .map_err(|e| self.error(e))?;
        Ok(expires)
    }

    /// When the sign-up whose link (void after `expires`) is followed was
    /// made; `None` when it is not kept (confirmed already, expired, or
    /// from before this was kept).
    pub fn signup_asked(&self, id: i64, expires: i64) -> Result<Option<DateTime<Utc>>, StoreError> {
        let asked: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT asked FROM signup_names WHERE subscriber_id = ?1 AND expires = ?2",
                params![id, expires],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error(e))?;
        Ok(asked
            .flatten()
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// After a confirmation: the name typed into the sign-up whose link
    /// (void after `expires`) was followed becomes the subscriber's, unless
    /// it was left empty.
    pub fn apply_signup_name(&self, id: i64, expires: i64) -> Result<(), StoreError> {
        // The topics chosen in that sign-up (none kept: every topic).
        self.conn
            .execute(
                "UPDATE subscribers SET topics = (SELECT topics FROM signup_names \
                 WHERE subscriber_id = ?1 AND expires = ?2) WHERE id = ?1 AND EXISTS \
                 (SELECT 1 FROM signup_names WHERE subscriber_id = ?1 AND expires = ?2)",
                params![id, expires],
            )
            .map_err(|e| self.error(e))?;
        self.conn
            .execute(
                "UPDATE subscribers SET name = (SELECT name FROM signup_names \
                 WHERE subscriber_id = ?1 AND expires = ?2) WHERE id = ?1 AND EXISTS \
                 (SELECT 1 FROM signup_names WHERE subscriber_id = ?1 AND expires = ?2 AND name <> '')",
                params![id, expires],
            )
            .map_err(|e| self.error(e))?;
        self.conn
            .execute(
                "DELETE FROM signup_names WHERE subscriber_id = ?1 AND expires <= ?2",
                params![id, expires],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The subscriber with this id.
    pub fn subscriber_by_id(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, email, name, status, created_at, key, topics FROM subscribers WHERE id = ?1",
                [id],
                subscriber_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Changes a subscriber's status: the one way a status changes after
    /// the row is added, for the CLI and the server alike, so the rules of
    /// [`StatusChange`] hold whoever asks.
    ///
    /// Deliveries are not touched here: sending cancels the pending ones of
    /// anyone no longer active when it reaches them ([`Store::pending`]), so
    /// a subscriber who leaves and comes back before then still gets the
    /// digest.
    pub fn change_status(
        &self,
        id: i64,
        change: StatusChange,
        now: DateTime<Utc>,
    ) -> Result<Changed, StoreError> {
        match change {
            StatusChange::Remove => self.mark_unsubscribed(id, now),
            StatusChange::Unsubscribe => match self.subscriber_by_id(id)? {
                None => Ok(Changed::Unknown),
                Some(s) if matches!(s.status, Status::Unsubscribed | Status::Complained) => {
                    Ok(Changed::Already)
                }
                Some(_) => self.mark_unsubscribed(id, now),
            },
            StatusChange::Reactivate => {
                let changed = self
                    .conn
                    .execute(
                        "UPDATE subscribers SET status = 'active', updated_at = ?1 \
                         WHERE id = ?2 AND status <> 'active'",
                        params![timestamp(now), id],
                    )
                    .map_err(|e| self.error(e))?;
                if changed > 0 {
                    return Ok(Changed::Done);
                }
                Ok(match self.subscriber_by_id(id)? {
                    None => Changed::Unknown,
                    Some(_) => Changed::Already,
                })
            }
            StatusChange::Confirm { asked } => {
                let changed = self
                    .conn
                    .execute(
                        "UPDATE subscribers SET status = 'active', updated_at = ?1 WHERE id = ?2 \
                         AND (status = 'pending' OR (status IN ('unsubscribed', 'bounced', 'complained') AND updated_at <= ?3))",
                        params![timestamp(now), id, timestamp(asked)],
                    )
                    .map_err(|e| self.error(e))?;
                if changed > 0 {
                    return Ok(Changed::Done);
                }
                Ok(match self.subscriber_by_id(id)? {
                    None => Changed::Unknown,
                    Some(s) if s.status == Status::Active => Changed::Already,
                    Some(_) => Changed::Stale,
                })
            }
        }
    }

    /// Marks a subscriber unsubscribed and restamps the row, whatever
    /// their status was.
    fn mark_unsubscribed(&self, id: i64, now: DateTime<Utc>) -> Result<Changed, StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE subscribers SET status = ?1, updated_at = ?2 WHERE id = ?3",
                params![Status::Unsubscribed.as_str(), timestamp(now), id],
            )
            .map_err(|e| self.error(e))?;
        Ok(if changed > 0 {
            Changed::Done
        } else {
            Changed::Unknown
        })
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
                "SELECT id, email, name, status, created_at, key, topics FROM subscribers \
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

    /// Sets the topics a subscriber chose (`None`: every topic, those
    /// added later too); false when there is no such subscriber.
    /// `updated_at` is left alone: it is when the status last changed,
    /// from which the soft-bounce window counts.
    pub fn set_topics(&self, id: i64, topics: Option<&str>) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE subscribers SET topics = ?2 WHERE id = ?1",
                params![id, topics],
            )
            .map(|n| n > 0)
            .map_err(|e| self.error(e))
    }

    /// Saves what an active subscriber chose on their preference page:
    /// their name and topics (`None`: every topic). False, and nothing
    /// changed, when there is no such subscriber or they are not active:
    /// the page subscribes no one again. Like [`Store::set_topics`], it
    /// leaves `updated_at`, the time of the last change of status.
    pub fn set_preferences(
        &self,
        id: i64,
        name: &str,
        topics: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.conn
            .execute(
                "UPDATE subscribers SET name = ?2, topics = ?3 \
                 WHERE id = ?1 AND status = 'active'",
                params![id, name, topics],
            )
            .map(|n| n > 0)
            .map_err(|e| self.error(e))
    }

    /// Every distinct choice of topics stored, with how many subscribers
    /// made it (for the keys the config no longer has, see
    /// `crate::topics::vanished_keys`).
    pub fn stored_topic_choices(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT topics, count(*) FROM subscribers WHERE topics IS NOT NULL \
                 GROUP BY topics ORDER BY topics",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
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
}

/// Adds an address unless it is there, with the topics chosen (`None`:
/// every topic).
pub(super) fn add_subscriber(
    conn: &Connection,
    email: &str,
    name: &str,
    status: Status,
    topics: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Added, rusqlite::Error> {
    if let Some(subscriber) = find(conn, email)? {
        return Ok(Added::Exists(subscriber));
    }
    conn.prepare_cached(
        "INSERT INTO subscribers (email, name, status, created_at, updated_at, key, topics) \
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
    )?
    .execute(params![
        email,
        name,
        status.as_str(),
        timestamp(now),
        new_key(),
        topics
    ])?;
    Ok(Added::New(conn.last_insert_rowid()))
}

/// The subscriber with this address. `Ann@x.org` is there already if
/// `ann@x.org` is (local parts are case-sensitive by the letter of RFC
/// 5321, never in practice).
pub(super) fn find(conn: &Connection, email: &str) -> Result<Option<Subscriber>, rusqlite::Error> {
    conn.prepare_cached(
        "SELECT id, email, name, status, created_at, key, topics FROM subscribers \
         WHERE email = ?1 COLLATE NOCASE ORDER BY id LIMIT 1",
    )?
    .query_row([email], subscriber_row)
    .optional()
}

fn key_taken(conn: &Connection, key: &str) -> Result<bool, rusqlite::Error> {
    conn.prepare_cached(
        "SELECT 1 FROM subscribers WHERE key = ?1 UNION ALL SELECT 1 FROM subscriber_aliases WHERE key = ?1",
    )?
        .query_row([key], |r| r.get::<_, i64>(0))
        .optional()
        .map(|found| found.is_some())
}

/// The salted hash an erased address is kept as: SHA-256 of the salt and
/// the address with A–Z lowercased, as lookups compare (SQLite's NOCASE).
fn forget_hash(salt: &str, email: &str) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(salt.as_bytes());
    hash.update(b":");
    hash.update(email.to_ascii_lowercase().as_bytes());
    hex::encode(hash.finalize())
}

fn subscriber_row(row: &rusqlite::Row<'_>) -> Result<Subscriber, rusqlite::Error> {
    let status: String = row.get(3)?;
    Ok(Subscriber {
        id: row.get(0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        status: Status::parse(&status).unwrap_or(Status::Unsubscribed),
        created_at: row.get(4)?,
        key: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
        topics: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, store};

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

    /// `minutes` after the fixed test time.
    fn at(minutes: i64) -> DateTime<Utc> {
        now() + chrono::TimeDelta::minutes(minutes)
    }

    fn new(store: &Store, email: &str, status: Status) -> i64 {
        match store.add_subscriber(email, "", status, at(0)).unwrap() {
            Added::New(id) => id,
            other => panic!("{other:?}"),
        }
    }

    fn updated_at(store: &Store, id: i64) -> String {
        store
            .conn
            .query_row(
                "SELECT updated_at FROM subscribers WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn leaving_by_link_unsubscribes_anyone_once() {
        let (_dir, store) = store();
        let active = new(&store, "a@x.org", Status::Active);
        let pending = new(&store, "p@x.org", Status::Pending);
        let bounced = new(&store, "b@x.org", Status::Bounced);
        for id in [active, pending, bounced] {
            assert_eq!(
                store
                    .change_status(id, StatusChange::Unsubscribe, at(1))
                    .unwrap(),
                Changed::Done
            );
            let s = store.subscriber_by_id(id).unwrap().unwrap();
            assert_eq!(s.status, Status::Unsubscribed);
        }
        // A second click writes nothing: the row keeps the first time.
        assert_eq!(
            store
                .change_status(active, StatusChange::Unsubscribe, at(2))
                .unwrap(),
            Changed::Already
        );
        assert_eq!(updated_at(&store, active), timestamp(at(1)));
        assert_eq!(
            store
                .change_status(999, StatusChange::Unsubscribe, at(2))
                .unwrap(),
            Changed::Unknown
        );
    }

    #[test]
    fn removal_by_the_admin_makes_an_earlier_confirmation_link_stale() {
        let (_dir, store) = store();
        let removed = new(&store, "r@x.org", Status::Active);
        let left = new(&store, "l@x.org", Status::Active);
        for id in [removed, left] {
            store
                .change_status(id, StatusChange::Unsubscribe, at(1))
                .unwrap();
        }
        // Both sign up again at 2 (the status stays `unsubscribed` until
        // they confirm); then, at 3, one is removed by the admin and the
        // other clicks an old unsubscribe link.
        assert_eq!(
            store
                .change_status(removed, StatusChange::Remove, at(3))
                .unwrap(),
            Changed::Done
        );
        assert_eq!(updated_at(&store, removed), timestamp(at(3)));
        assert_eq!(
            store
                .change_status(left, StatusChange::Unsubscribe, at(3))
                .unwrap(),
            Changed::Already
        );
        let confirm = StatusChange::Confirm { asked: at(2) };
        assert_eq!(
            store.change_status(removed, confirm, at(4)).unwrap(),
            Changed::Stale
        );
        assert_eq!(
            store.change_status(left, confirm, at(4)).unwrap(),
            Changed::Done
        );
        assert_eq!(
            store
                .change_status(999, StatusChange::Remove, at(4))
                .unwrap(),
            Changed::Unknown
        );
    }

    #[test]
    fn a_confirmation_activates_once_and_never_undoes_a_later_leave() {
        let (_dir, store) = store();
        let id = new(&store, "p@x.org", Status::Pending);
        let first = StatusChange::Confirm { asked: at(0) };
        assert_eq!(
            store.change_status(id, first, at(1)).unwrap(),
            Changed::Done
        );
        assert_eq!(store.count(Status::Active).unwrap(), 1);
        assert_eq!(
            store.change_status(id, first, at(2)).unwrap(),
            Changed::Already
        );
        store
            .change_status(id, StatusChange::Unsubscribe, at(3))
            .unwrap();
        assert_eq!(
            store.change_status(id, first, at(4)).unwrap(),
            Changed::Stale
        );
        let second = StatusChange::Confirm { asked: at(5) };
        assert_eq!(
            store.change_status(id, second, at(6)).unwrap(),
            Changed::Done
        );
        assert_eq!(
            store.change_status(999, second, at(6)).unwrap(),
            Changed::Unknown
        );
    }
}

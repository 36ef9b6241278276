//! Subscribers: who is on the list and where each one stands.

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
    /// The address does not take mail.
    Bounced,
}

impl Status {
    /// Every status, in the order the CLI lists them.
    pub const ALL: [Status; 4] = [
        Status::Active,
        Status::Pending,
        Status::Unsubscribed,
        Status::Bounced,
    ];

    /// The status as the `status` column stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Pending => "pending",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
        }
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
}

/// What adding an address did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new row, with this id.
    New(i64),
    /// The address was already there; nothing changed.
    Exists(Subscriber),
}

/// What a confirmation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// The subscriber is active now.
    Activated,
    /// The subscriber was active already; nothing changed.
    AlreadyActive,
    /// The subscriber changed their mind after the link was sent.
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
}

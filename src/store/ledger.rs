//! The delivery ledger: one row per digest and subscriber, `pending` until
//! the server has answered for it.
//!
//! Because an outcome is written as soon as it is known, a send that stops
//! half way resumes with exactly the deliveries still pending.

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

use super::{Store, StoreError, timestamp};

/// A delivery still to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub subscriber_id: i64,
    /// What their links name them by.
    pub key: String,
    pub email: String,
    pub name: String,
    pub attempts: i64,
    /// What their copy carries (`None`: the whole mailing, as stored: a
    /// welcome, or a mailing made before topics).
    pub choice: Option<super::Choice>,
}

/// How one delivery attempt ended, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the server (its reply).
    Sent(String),
    /// Refused for good (the reason).
    Failed(String),
    /// Refused for good because the address does not take mail (a 5.1.x or
    /// 5.2.x at RCPT): failed, and the subscriber is bounced, with the
    /// refusal kept among the reports that came back.
    Bounced(String),
    /// A temporary failure: the delivery stays pending, one attempt more.
    Retry(String),
    /// The server could not be reached for it (no connection, TLS or login
    /// failed): the delivery stays pending and no attempt is counted, so
    /// an outage does not use up anyone's attempts.
    Unreached(String),
}

/// Delivery counts of one digest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pending: usize,
    pub sent: usize,
    pub failed: usize,
    /// Subscribers who left after the digest was made: not mailed.
    pub cancelled: usize,
    /// Subscribers none of whose topics the mailing had: not mailed.
    pub skipped: usize,
}

/// A pending delivery (or welcome) from a row of
/// `subscriber_id, email, name, attempts, key`, and of a delivery's choice
/// after them (`posts, cards, subject, preheader`) when the row has more.
pub(super) fn pending_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pending> {
    let choice = match r.as_ref().column_count() > 5 {
        true => super::Choice::from_row(r, 5)?,
        false => None,
    };
    Ok(Pending {
        subscriber_id: r.get(0)?,
        key: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        email: r.get(1)?,
        name: r.get(2)?,
        attempts: r.get(3)?,
        choice,
    })
}

impl Outcome {
    /// What the ledger writes for it: the status, the server's reply or
    /// the reason, and the attempts it counts (none when the server was
    /// not reached).
    pub(super) fn entry(&self) -> (&'static str, &str, i64) {
        match self {
            Outcome::Sent(reply) => ("sent", reply, 1),
            Outcome::Failed(reason) | Outcome::Bounced(reason) => ("failed", reason, 1),
            Outcome::Retry(reason) => ("pending", reason, 1),
            Outcome::Unreached(reason) => ("pending", reason, 0),
        }
    }
}

impl Store {
    /// Cancels a digest's pending deliveries to subscribers who are no
    /// longer active.
    pub fn cancel_departed(&self, digest_id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE deliveries SET status = 'cancelled', updated_at = ?2 \
                 WHERE digest_id = ?1 AND status = 'pending' AND subscriber_id IN \
                 (SELECT id FROM subscribers WHERE status <> 'active')",
                params![digest_id, timestamp(now)],
            )
            .map(drop)
            .map_err(|e| self.error(e))
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
        self.cancel_departed(digest_id, now)?;
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT d.subscriber_id, s.email, s.name, d.attempts, s.key, \
                 c.posts, c.cards, c.subject, c.preheader FROM deliveries d \
                 JOIN subscribers s ON s.id = d.subscriber_id \
                 LEFT JOIN choices c ON c.digest_id = d.digest_id AND c.id = d.choice \
                 WHERE d.digest_id = ?1 AND d.status = 'pending' AND d.subscriber_id > ?2 \
                 ORDER BY d.subscriber_id LIMIT ?3",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![digest_id, after, limit as i64], pending_row)
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
                "UPDATE deliveries SET status = ?3, attempts = attempts + ?6, reply = ?4, updated_at = ?5 \
                 WHERE digest_id = ?1 AND subscriber_id = ?2 \
                 AND (status = 'pending' OR (status = 'cancelled' AND ?3 = 'sent'))",
            )?;
            for (subscriber_id, outcome) in outcomes {
                if let Outcome::Bounced(reason) = outcome {
                    record_refusal(
                        tx,
                        &format!("smtp {digest_id}.{subscriber_id}"),
                        *subscriber_id,
                        Some(digest_id),
                        reason,
                        now,
                    )?;
                }
                let (status, text, charged) = outcome.entry();
                finish.execute(params![
                    digest_id,
                    subscriber_id,
                    status,
                    text,
                    timestamp(now),
                    charged
                ])?;
            }
            Ok(())
        })
    }

    /// Addresses a digest is still to go to (active subscribers with a
    /// pending delivery), each with the subject of their copy, without
    /// changing anything.
    pub fn pending_recipients(&self, digest_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT s.email, coalesce(c.subject, g.subject) FROM deliveries d \
                 JOIN subscribers s ON s.id = d.subscriber_id JOIN digests g ON g.id = d.digest_id \
                 LEFT JOIN choices c ON c.digest_id = d.digest_id AND c.id = d.choice \
                 WHERE d.digest_id = ?1 AND d.status = 'pending' AND s.status = 'active' \
                 ORDER BY d.subscriber_id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([digest_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Delivery counts of a digest.
    pub fn counts(&self, digest_id: i64) -> Result<Counts, StoreError> {
        self.tally(
            "SELECT status, count(*) FROM deliveries WHERE digest_id = ?1 GROUP BY status",
            [digest_id],
        )
    }

    /// Counts from a query of `status, count(*)` rows of a ledger.
    pub(super) fn tally(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Counts, StoreError> {
        let mut counts = Counts::default();
        let mut statement = self.conn.prepare(sql).map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params, |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(|e| self.error(e))?;
        for row in rows {
            let (status, n) = row.map_err(|e| self.error(e))?;
            match status.as_str() {
                "pending" => counts.pending = n,
                "sent" => counts.sent = n,
                "failed" => counts.failed = n,
                "skipped" => counts.skipped = n,
                _ => counts.cancelled = n,
            }
        }
        Ok(counts)
    }
}

/// A refusal of the address at RCPT (a 5.1.x or 5.2.x), answered to the
/// message `identity` names: kept among the reports that came back, as a
/// hard bounce about `subscriber_id` (and `digest_id`, `None` for a
/// message that is no digest: a welcome), and the subscriber bounced.
pub(super) fn record_refusal(
    tx: &Transaction,
    identity: &str,
    subscriber_id: i64,
    digest_id: Option<i64>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO bounces \
         (identity, subscriber_id, digest_id, kind, status, detail, received_at, trusted, read_at) \
         VALUES (?1, ?2, ?3, 'hard', ?4, ?5, ?6, 1, ?6)",
    )?
    .execute(params![
        identity,
        subscriber_id,
        digest_id,
        crate::bounces::parse::status_of(reason).unwrap_or_default(),
        reason,
        timestamp(now)
    ])?;
    tx.prepare_cached(
        "UPDATE subscribers SET status = 'bounced', updated_at = ?2 \
         WHERE id = ?1 AND status IN ('active', 'pending')",
    )?
    .execute(params![subscriber_id, timestamp(now)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, store};
    use crate::store::{NewDigest, Plan, Status};

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
                    kind: Default::default(),
                    page: "",
                    subject: "S",
                    html: "H",
                    text: "T",
                    posts: &[],
                    skipped: &[],
                    adopted: &[],
                },
                Plan::everyone,
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

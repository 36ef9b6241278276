//! The welcome ledger: one row per subscriber who was welcomed, or is to
//! be (`welcomes`), kept apart from the digests' deliveries.
//!
//! A welcome is queued (`pending`) in the same transaction that makes the
//! subscriber active, so a crash never activates anyone without queuing
//! their welcome; it then ends `sent`, `failed` (refused for good, or out
//! of attempts) or `cancelled` (the subscriber was no longer active when
//! its turn came). Each outcome is written as soon as the server answers,
//! as the digest ledger does ([`super::ledger`]).
//!
//! One row per subscriber, ever (the primary key): someone who leaves and
//! confirms again is not welcomed a second time. Only a welcome that never
//! went out (`cancelled`) is queued again when they come back.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::ledger::{Counts, Outcome, Pending, pending_row, record_refusal};
use super::subscribers::add_subscriber;
use super::{Added, Changed, StatusChange, Store, StoreError, timestamp};

impl Store {
    /// Adds an address (already normalised) as an active subscriber with
    /// the topics they chose (`None`: every topic) and, with `welcome`, a
    /// welcome queued, in one transaction: a crash never leaves a new row
    /// without its choice or its welcome. An address already there is left
    /// as it is: its topics and its welcome too (`subscribers add`).
    pub fn add_active(
        &mut self,
        email: &str,
        name: &str,
        topics: Option<&str>,
        welcome: bool,
        now: DateTime<Utc>,
    ) -> Result<Added, StoreError> {
        let added = self.transaction(|tx| {
            let added = add_subscriber(tx, email, name, super::Status::Active, topics, now)?;
            if let (Added::New(id), true) = (&added, welcome) {
                queue_welcome(tx, *id, now)?;
            }
            Ok(added)
        })?;
        if matches!(added, Added::New(_)) {
            self.unforget(email)?;
        }
        Ok(added)
    }

    /// A confirmation ([`StatusChange::Confirm`]) that, when it makes the
    /// subscriber active and `welcome` is set, queues their welcome in the
    /// same transaction.
    pub fn confirm_and_welcome(
        &self,
        id: i64,
        asked: DateTime<Utc>,
        now: DateTime<Utc>,
        welcome: bool,
    ) -> Result<Changed, StoreError> {
        // `change_status` writes through `self.conn`, inside this
        // transaction; dropped without a commit, it rolls back.
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let changed = self.change_status(id, StatusChange::Confirm { asked }, now)?;
        if welcome && changed == Changed::Done {
            queue_welcome(&tx, id, now).map_err(|e| self.error(e))?;
        }
        tx.commit().map_err(|e| self.error(e))?;
        Ok(changed)
    }

    /// Up to `limit` welcomes still to send, to subscribers with ids above
    /// `after`, in id order. The welcomes of subscribers who are no longer
    /// active are cancelled on the way.
    pub fn pending_welcomes(
        &self,
        after: i64,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Pending>, StoreError> {
        self.cancel_welcomes("status <> 'active'", now)?;
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT w.subscriber_id, s.email, s.name, w.attempts, s.key FROM welcomes w \
                 JOIN subscribers s ON s.id = w.subscriber_id \
                 WHERE w.status = 'pending' AND w.subscriber_id > ?1 \
                 ORDER BY w.subscriber_id LIMIT ?2",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![after, limit as i64], pending_row)
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Records how one welcome went, as soon as the server has answered:
    /// sent, failed (a refusal of the address also bounces the subscriber,
    /// the refusal kept among the reports with no digest), or still pending
    /// (with an attempt counted when the server was reached).
    pub fn record_welcome(
        &mut self,
        subscriber_id: i64,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| {
            if let Outcome::Bounced(reason) = outcome {
                let identity = format!("smtp welcome.{subscriber_id}");
                record_refusal(tx, &identity, subscriber_id, None, reason, now)?;
            }
            let (status, text, charged) = outcome.entry();
            // A welcome cancelled meanwhile that the server took anyway
            // was sent all the same.
            tx.prepare_cached(
                "UPDATE welcomes SET status = ?2, attempts = attempts + ?3, reply = ?4, updated_at = ?5 \
                 WHERE subscriber_id = ?1 AND (status = 'pending' OR (status = 'cancelled' AND ?2 = 'sent'))",
            )?
            .execute(params![subscriber_id, status, charged, text, timestamp(now)])?;
            Ok(())
        })
    }

    /// Cancels every welcome still pending (`[welcome] enabled = false`):
    /// turned back on, it welcomes those who subscribe from then on, not
    /// those who did while it was off. How many were cancelled.
    pub fn cancel_pending_welcomes(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.cancel_welcomes("1", now)
    }

    /// Cancels the pending welcomes of subscribers matching `which` (an SQL
    /// condition on `subscribers`).
    fn cancel_welcomes(&self, which: &str, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.conn
            .execute(
                &format!(
                    "UPDATE welcomes SET status = 'cancelled', updated_at = ?1 \
                     WHERE status = 'pending' AND subscriber_id IN (SELECT id FROM subscribers WHERE {which})"
                ),
                [timestamp(now)],
            )
            .map_err(|e| self.error(e))
    }

    /// The welcome ledger's counts, over every subscriber.
    pub fn welcome_counts(&self) -> Result<Counts, StoreError> {
        self.tally("SELECT status, count(*) FROM welcomes GROUP BY status", [])
    }
}

/// Queues a welcome for subscriber `id`, unless they have one already: a
/// welcome sent, failed or still pending stays as it is; one cancelled (it
/// never went out) is pending again.
fn queue_welcome(conn: &Connection, id: i64, now: DateTime<Utc>) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO welcomes (subscriber_id, status, created_at, updated_at) \
         VALUES (?1, 'pending', ?2, ?2) \
         ON CONFLICT (subscriber_id) DO UPDATE SET status = 'pending', updated_at = excluded.updated_at \
         WHERE welcomes.status = 'cancelled'",
    )?
    .execute(params![id, timestamp(now)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Status;
    use crate::store::testing::{now, store};

    fn later(minutes: i64) -> DateTime<Utc> {
        now() + chrono::TimeDelta::minutes(minutes)
    }

    fn pending(store: &Store) -> Vec<String> {
        store
            .pending_welcomes(0, 100, later(100))
            .unwrap()
            .into_iter()
            .map(|p| p.email)
            .collect()
    }

    fn added(added: Added) -> i64 {
        match added {
            Added::New(id) => id,
            Added::Exists(s) => panic!("{} was there", s.email),
        }
    }

    #[test]
    fn adding_with_a_welcome_queues_one_and_an_address_already_there_none() {
        let (_dir, mut store) = store();
        let id = added(store.add_active("a@x.org", "A", None, true, now()).unwrap());
        assert_eq!(pending(&store), ["a@x.org"]);
        let again = store.add_active("A@x.org", "", None, true, now()).unwrap();
        assert!(matches!(again, Added::Exists(_)));
        store
            .add_subscriber("b@x.org", "", Status::Active, now())
            .unwrap();
        store.add_active("b@x.org", "", None, true, now()).unwrap();
        assert_eq!(pending(&store), ["a@x.org"]);
        let p = &store.pending_welcomes(0, 10, now()).unwrap()[0];
        assert_eq!((p.subscriber_id, p.attempts), (id, 0));

        // The topics come with the row; an address already there keeps its own.
        store
            .add_active("c@x.org", "", Some("releases"), false, now())
            .unwrap();
        store
            .add_active("c@x.org", "", Some("events"), false, now())
            .unwrap();
        let c = store.subscriber("c@x.org").unwrap().unwrap();
        assert_eq!(c.topics.as_deref(), Some("releases"));
        assert_eq!(pending(&store), ["a@x.org"]);
    }

    #[test]
    fn a_confirmation_welcomes_once_even_after_leaving_and_coming_back() {
        let (_dir, mut store) = store();
        let id = added(
            store
                .add_subscriber("a@x.org", "", Status::Pending, now())
                .unwrap(),
        );
        let asked = now();
        // Off: confirmed, not welcomed.
        let off = store
            .confirm_and_welcome(id, asked, later(1), false)
            .unwrap();
        assert_eq!(off, Changed::Done);
        assert!(pending(&store).is_empty());
        store
            .change_status(id, StatusChange::Remove, later(2))
            .unwrap();

        let id = added(
            store
                .add_subscriber("b@x.org", "", Status::Pending, now())
                .unwrap(),
        );
        let done = store
            .confirm_and_welcome(id, asked, later(1), true)
            .unwrap();
        assert_eq!(done, Changed::Done);
        assert_eq!(pending(&store), ["b@x.org"]);
        // Confirming again changes nothing and queues nothing more.
        let again = store
            .confirm_and_welcome(id, asked, later(2), true)
            .unwrap();
        assert_eq!(again, Changed::Already);
        store
            .record_welcome(id, &Outcome::Sent("250 ok".into()), later(3))
            .unwrap();
        assert!(pending(&store).is_empty());
        // Leaves, signs up and confirms again: no second welcome.
        store
            .change_status(id, StatusChange::Unsubscribe, later(4))
            .unwrap();
        let back = store
            .confirm_and_welcome(id, later(5), later(6), true)
            .unwrap();
        assert_eq!(back, Changed::Done);
        assert!(pending(&store).is_empty());
        assert_eq!(store.welcome_counts().unwrap().sent, 1);
    }

    #[test]
    fn a_stale_confirmation_queues_nothing() {
        let (_dir, store) = store();
        let id = added(
            store
                .add_subscriber("a@x.org", "", Status::Pending, now())
                .unwrap(),
        );
        store
            .change_status(id, StatusChange::Unsubscribe, later(5))
            .unwrap();
        let stale = store
            .confirm_and_welcome(id, now(), later(6), true)
            .unwrap();
        assert_eq!(stale, Changed::Stale);
        assert!(pending(&store).is_empty());
        assert_eq!(store.welcome_counts().unwrap(), Counts::default());
    }

    #[test]
    fn outcomes_count_attempts_and_leavers_are_cancelled_then_queued_again() {
        let (_dir, mut store) = store();
        let a = added(store.add_active("a@x.org", "", None, true, now()).unwrap());
        let b = added(store.add_active("b@x.org", "", None, true, now()).unwrap());
        let c = added(store.add_active("c@x.org", "", None, true, now()).unwrap());
        let d = added(store.add_active("d@x.org", "", None, true, now()).unwrap());
        store
            .record_welcome(a, &Outcome::Retry("451 later".into()), later(1))
            .unwrap();
        store
            .record_welcome(a, &Outcome::Unreached("no connection".into()), later(2))
            .unwrap();
        store
            .record_welcome(b, &Outcome::Failed("554 no".into()), later(1))
            .unwrap();
        store
            .record_welcome(
                c,
                &Outcome::Bounced("550 5.1.1 no such user".into()),
                later(1),
            )
            .unwrap();
        let left = store.pending_welcomes(0, 10, later(2)).unwrap();
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!((left[0].subscriber_id, left[0].attempts), (a, 1));
        // The refused address is bounced, and the refusal kept with no digest.
        assert_eq!(
            store.subscriber("c@x.org").unwrap().unwrap().status,
            Status::Bounced
        );
        let (digest, kind): (Option<i64>, String) = store
            .conn
            .query_row(
                "SELECT digest_id, kind FROM bounces WHERE subscriber_id = ?1",
                [c],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((digest, kind.as_str()), (None, "hard"));
        // A late answer does not change a final outcome.
        store
            .record_welcome(b, &Outcome::Sent("250".into()), later(3))
            .unwrap();
        // d leaves before its turn: cancelled; confirmed back: pending again.
        store
            .change_status(d, StatusChange::Unsubscribe, later(4))
            .unwrap();
        assert_eq!(pending(&store), ["a@x.org"]);
        let back = store
            .confirm_and_welcome(d, later(5), later(6), true)
            .unwrap();
        assert_eq!(back, Changed::Done);
        assert_eq!(pending(&store), ["a@x.org", "d@x.org"]);
        let counts = store.welcome_counts().unwrap();
        assert_eq!((counts.pending, counts.failed, counts.sent), (2, 2, 0));
        assert_eq!(store.cancel_pending_welcomes(later(7)).unwrap(), 2);
        assert!(pending(&store).is_empty());
    }

    #[test]
    fn a_bounce_of_a_welcome_names_the_subscriber_and_no_digest() {
        let (_dir, mut store) = store();
        let id = added(store.add_active("a@x.org", "", None, true, now()).unwrap());
        store
            .record_welcome(id, &Outcome::Sent("250 ok".into()), later(1))
            .unwrap();
        // What `bounces read` makes of a DSN quoting <welcome-ID.…> (or
        // sent to its VERP address): digest 0, believed.
        let report = crate::store::Incoming {
            identity: "<dsn-1@mx.example>".into(),
            event: crate::store::Event::Hard,
            recipient: Some("someone-else@forward.example".into()),
            alternate: None,
            ours: Some((0, id)),
            at: None,
            status: "5.1.1".into(),
            detail: "550 5.1.1 no such user".into(),
        };
        let rules = crate::store::Rules {
            soft_limit: 3,
            soft_window: std::time::Duration::from_secs(86400),
        };
        let recorded = store.record_reports(&[report], rules, later(2)).unwrap();
        assert_eq!(
            recorded,
            [crate::store::Recorded::Counted {
                email: "a@x.org".into(),
                now: Some(Status::Bounced)
            }]
        );
        let digest: Option<i64> = store
            .conn
            .query_row("SELECT digest_id FROM bounces", [], |r| r.get(0))
            .unwrap();
        assert_eq!(digest, None);
    }

    #[test]
    fn forgetting_a_subscriber_removes_their_welcome() {
        let (_dir, mut store) = store();
        let id = added(store.add_active("a@x.org", "", None, true, now()).unwrap());
        assert!(store.forget(id, later(1)).unwrap());
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM welcomes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }
}

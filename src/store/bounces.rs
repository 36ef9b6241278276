//! Reports that came back (bounces, complaints, mailed unsubscribes),
//! each kept once in `bounces`, and what they do to a subscriber.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::subscribers::find;
use super::{Status, Store, StoreError, timestamp};

/// What a report says happened to one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Hard,
    Soft,
    Complaint,
    Unsubscribe,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Hard => "hard",
            Event::Soft => "soft",
            Event::Complaint => "complaint",
            Event::Unsubscribe => "unsubscribe",
        }
    }
}

/// One report about one address, as read.
///
/// Trust: a report carrying `ours` is believed at once. One that only
/// names an address could have been written by anyone (a forged bounce,
/// a forged complaint): a hard bounce then counts as a soft one (it takes
/// an address off only with others, over time), and a complaint is kept
/// but changes nothing. A mailed unsubscribe request acts on its From
/// address either way, as mailto unsubscribes do everywhere.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// What makes it the same report when read again (its Message-ID and
    /// the recipient, or a hash of the message).
    pub identity: String,
    pub event: Event,
    /// The address it names, as written in it.
    pub recipient: Option<String>,
    /// Another address the report names for the same recipient (its
    /// `Original-Recipient`), tried when `recipient` is no one.
    pub alternate: Option<String>,
    /// `(digest, subscriber)` from a VERP address or a tagged Message-ID
    /// of ours, both checked with the secret: only we can make them, so
    /// they name the subscriber whatever address the report names (a
    /// bounce from a forward names where the mail was forwarded to).
    pub ours: Option<(i64, i64)>,
    /// When the report was made (its Date, if plausible; else now): the
    /// soft-bounce window counts from it, so an old archive read today is
    /// not a run of recent bounces.
    pub at: Option<DateTime<Utc>>,
    pub status: String,
    pub detail: String,
}

/// When soft bounces take an address off (`[bounces]`).
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub soft_limit: u32,
    pub soft_window: Duration,
}

/// What recording one report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Read before: counted then, not again.
    Again,
    /// No subscriber has that address (or none was named).
    NoOne,
    /// Counted; `now` is the subscriber's new status when it changed.
    Counted { email: String, now: Option<Status> },
}

impl Store {
    /// Records `reports` in one transaction: all or none, so a run cut
    /// short and started again counts each once.
    pub fn record_reports(
        &mut self,
        reports: &[Incoming],
        rules: Rules,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, StoreError> {
        self.transaction(|tx| {
            reports
                .iter()
                .map(|report| record(tx, report, rules, now))
                .collect()
        })
    }
}

fn record(
    tx: &Transaction,
    report: &Incoming,
    rules: Rules,
    now: DateTime<Utc>,
) -> Result<Recorded, rusqlite::Error> {
    let seen: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM bounces WHERE identity = ?1")?
        .query_row([&report.identity], |r| r.get(0))
        .optional()?;
    if seen.is_some() {
        return Ok(Recorded::Again);
    }
    let (subscriber, digest, trusted) = whom(tx, report)?;
    // A report dated in the future, or over a year ago, is dated now.
    let at = report
        .at
        .filter(|at| *at <= now && *at > now - chrono::Duration::days(366))
        .unwrap_or(now);
    tx.prepare_cached(
        "INSERT INTO bounces (identity, subscriber_id, digest_id, kind, status, detail, recipient, received_at, trusted, read_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        report.identity,
        subscriber.as_ref().map(|s| s.0),
        digest,
        report.event.as_str(),
        report.status,
        report.detail,
        report.recipient.as_deref().unwrap_or_default(),
        timestamp(at),
        trusted,
        timestamp(now)
    ])?;
    let Some((id, email)) = subscriber else {
        return Ok(Recorded::NoOne);
    };
    let change = match report.event {
        // Written before the subscriber's last change of status (a
        // reactivation, a new sign-up): old news, read late (an old
        // mbox), that must not undo that change.
        Event::Hard if trusted && before_last_change(tx, id, at)? => None,
        Event::Hard if trusted => Some((Status::Bounced, "status IN ('active', 'pending')")),
        Event::Hard | Event::Soft if soft_limit_reached(tx, id, rules, now)? => {
            Some((Status::Bounced, "status IN ('active', 'pending')"))
        }
        Event::Hard | Event::Soft => None,
        Event::Complaint if trusted => Some((Status::Complained, "status <> 'complained'")),
        Event::Complaint => None,
        Event::Unsubscribe => Some((
            Status::Unsubscribed,
            "status IN ('active', 'pending', 'bounced')",
        )),
    };
    let mut changed = None;
    if let Some((status, when)) = change {
        let rows = tx.execute(
            &format!(
                "UPDATE subscribers SET status = ?1, updated_at = ?2 WHERE id = ?3 AND {when}"
            ),
            params![status.as_str(), timestamp(now), id],
        )?;
        if rows > 0 {
            changed = Some(status);
        }
    }
    Ok(Recorded::Counted {
        email,
        now: changed,
    })
}

/// Whether `at` is before subscriber `id` last changed status.
fn before_last_change(
    tx: &Transaction,
    id: i64,
    at: DateTime<Utc>,
) -> Result<bool, rusqlite::Error> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM subscribers WHERE id = ?1 AND updated_at > ?2)",
    )?
    .query_row(params![id, timestamp(at)], |r| r.get(0))
}

/// A subscriber's id and address.
type Who = (i64, String);

/// The subscriber (id, address) and digest a report is about, and whether
/// it is to be believed: the one our checked ids name (the digest only if
/// it exists), believed; else the one with the address the report names,
/// else its alternate address, not believed.
fn whom(
    tx: &Transaction,
    report: &Incoming,
) -> Result<(Option<Who>, Option<i64>, bool), rusqlite::Error> {
    if let Some((digest, id)) = report.ours {
        let found: Option<String> = tx
            .prepare_cached("SELECT email FROM subscribers WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if let Some(email) = found {
            let digest: Option<i64> = tx
                .prepare_cached("SELECT id FROM digests WHERE id = ?1")?
                .query_row([digest], |r| r.get(0))
                .optional()?;
            return Ok((Some((id, email)), digest, true));
        }
    }
    for address in [report.recipient.as_deref(), report.alternate.as_deref()]
        .into_iter()
        .flatten()
    {
        let canonical = super::normalize_email(address).unwrap_or_else(|_| address.to_string());
        if let Some(s) = find(tx, &canonical)? {
            return Ok((Some((s.id, s.email)), None, false));
        }
    }
    Ok((None, None, false))
}

/// Whether `id` has had `rules.soft_limit` soft bounces within the window
/// with no digest taken in between: bounces of digests after the last
/// digest sent to them that did not bounce (among those before the latest
/// that did), and bounces that name no digest (one a day at most), all
/// within the window and since the subscriber last became active (a
/// reactivation wipes the slate).
fn soft_limit_reached(
    tx: &Transaction,
    id: i64,
    rules: Rules,
    now: DateTime<Utc>,
) -> Result<bool, rusqlite::Error> {
    let since =
        now - chrono::Duration::from_std(rules.soft_window).unwrap_or(chrono::Duration::days(30));
    let count: i64 = tx
        .prepare_cached(
            "WITH recent AS (
                 SELECT digest_id, id, substr(received_at, 1, 10) AS day FROM bounces
                 WHERE subscriber_id = ?1 AND kind IN ('soft', 'hard') AND received_at >= ?2
                   AND read_at >= (SELECT updated_at FROM subscribers WHERE id = ?1)
             ),
             clean AS (
                 SELECT max(d.digest_id) AS digest_id FROM deliveries d
                 WHERE d.subscriber_id = ?1 AND d.status = 'sent'
                   AND d.digest_id < (SELECT coalesce(max(digest_id), 0) FROM recent)
                   AND NOT EXISTS (SELECT 1 FROM bounces b
                                   WHERE b.subscriber_id = ?1 AND b.digest_id = d.digest_id)
             )
             SELECT count(DISTINCT digest_id)
                    + (SELECT count(DISTINCT day) FROM recent WHERE digest_id IS NULL)
             FROM recent
             WHERE digest_id > coalesce((SELECT digest_id FROM clean), 0)",
        )?
        .query_row(params![id, timestamp(since)], |r| r.get(0))?;
    Ok(count >= i64::from(rules.soft_limit))
}

/// One digest's outcome, for `newsletter digests`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestReport {
    pub id: i64,
    pub created_at: String,
    pub subject: String,
    /// Deliveries made for it (cancelled ones included, skipped ones not:
    /// readers with nothing of their topics in it).
    pub recipients: usize,
    pub sent: usize,
    pub failed: usize,
    pub pending: usize,
    pub hard: usize,
    pub soft: usize,
    pub complaints: usize,
    /// Its recipients who left after it was made and before the next one.
    pub unsubscribes: usize,
}

impl DigestReport {
    /// Bounces (hard and soft) per recipient mailed.
    pub fn bounce_rate(&self) -> f64 {
        ratio(self.hard + self.soft, self.sent + self.failed)
    }

    pub fn complaint_rate(&self) -> f64 {
        ratio(self.complaints, self.sent + self.failed)
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Who a digest reached, by outcome, for `newsletter digests show N`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestOutcomes {
    /// `(address, outcome, detail)`: outcome one of sent, failed,
    /// pending, cancelled, hard, soft, complaint, unsubscribed.
    pub rows: Vec<(String, String, String)>,
}

impl Store {
    /// Every digest, newest first, with what became of it.
    pub fn digest_reports(&self) -> Result<Vec<DigestReport>, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT g.id, g.created_at, g.subject,
                    (SELECT count(*) FROM deliveries d WHERE d.digest_id = g.id AND d.status <> 'skipped'),
                    (SELECT count(*) FROM deliveries d WHERE d.digest_id = g.id AND d.status = 'sent'),
                    (SELECT count(*) FROM deliveries d WHERE d.digest_id = g.id AND d.status = 'failed'),
                    (SELECT count(*) FROM deliveries d WHERE d.digest_id = g.id AND d.status = 'pending'),
                    (SELECT count(DISTINCT subscriber_id) FROM bounces b WHERE b.digest_id = g.id AND b.kind = 'hard'),
                    (SELECT count(DISTINCT subscriber_id) FROM bounces b WHERE b.digest_id = g.id AND b.kind = 'soft'),
                    (SELECT count(DISTINCT subscriber_id) FROM bounces b WHERE b.digest_id = g.id AND b.kind = 'complaint'),
                    (SELECT count(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                       WHERE d.digest_id = g.id AND d.status <> 'skipped'
                         AND s.status = 'unsubscribed' AND s.updated_at >= g.created_at
                         AND s.updated_at < coalesce((SELECT min(n.created_at) FROM digests n WHERE n.id > g.id), '9999'))
                 FROM digests g ORDER BY g.id DESC",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v as usize);
                Ok(DigestReport {
                    id: r.get(0)?,
                    created_at: r.get(1)?,
                    subject: r.get(2)?,
                    recipients: n(3)?,
                    sent: n(4)?,
                    failed: n(5)?,
                    pending: n(6)?,
                    hard: n(7)?,
                    soft: n(8)?,
                    complaints: n(9)?,
                    unsubscribes: n(10)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// The addresses of digest `id` by outcome; `None` if there is no
    /// such digest.
    pub fn digest_outcomes(&self, id: i64) -> Result<Option<DigestOutcomes>, StoreError> {
        let exists: Option<i64> = self
            .conn
            .query_row("SELECT id FROM digests WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.error(e))?;
        if exists.is_none() {
            return Ok(None);
        }
        let mut statement = self
            .conn
            .prepare(
                "SELECT s.email, d.status, d.reply FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                   WHERE d.digest_id = ?1
                 UNION ALL
                 SELECT coalesce(s.email, b.recipient), b.kind, b.status || ' ' || b.detail
                   FROM bounces b LEFT JOIN subscribers s ON s.id = b.subscriber_id
                   WHERE b.digest_id = ?1
                 UNION ALL
                 SELECT s.email, 'unsubscribed', s.updated_at FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                   JOIN digests g ON g.id = d.digest_id
                   WHERE d.digest_id = ?1 AND d.status <> 'skipped'
                     AND s.status = 'unsubscribed' AND s.updated_at >= g.created_at
                 ORDER BY 2, 1",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?.trim().to_string(),
                ))
            })
            .map_err(|e| self.error(e))?;
        Ok(Some(DigestOutcomes {
            rows: rows.collect::<Result<_, _>>().map_err(|e| self.error(e))?,
        }))
    }
}

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
#[derive(Debug, Clone)]
pub struct Incoming {
    /// What makes it the same report when read again (its Message-ID and
    /// the recipient, or a hash of the message).
    pub identity: String,
    pub event: Event,
    /// The address it names, as written in it.
    pub recipient: Option<String>,
    /// `(digest, subscriber)` from our Message-ID or VERP token, when the
    /// report carries one.
    pub ours: Option<(i64, i64)>,
    /// `ours` came from a VERP address, whose tag only we can make: it
    /// names the subscriber whatever address the report names (a bounce
    /// from a forward names where the mail was forwarded to). From a
    /// Message-ID it counts only when the addresses agree.
    pub verp: bool,
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
    let (subscriber, digest) = whom(tx, report)?;
    tx.prepare_cached(
        "INSERT INTO bounces (identity, subscriber_id, digest_id, kind, status, detail, recipient, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        report.identity,
        subscriber.as_ref().map(|s| s.0),
        digest,
        report.event.as_str(),
        report.status,
        report.detail,
        report.recipient.as_deref().unwrap_or_default(),
        timestamp(now)
    ])?;
    let Some((id, email)) = subscriber else {
        return Ok(Recorded::NoOne);
    };
    let change = match report.event {
        Event::Hard => Some((Status::Bounced, "status IN ('active', 'pending')")),
        Event::Soft if soft_limit_reached(tx, id, rules, now)? => {
            Some((Status::Bounced, "status IN ('active', 'pending')"))
        }
        Event::Soft => None,
        Event::Complaint => Some((Status::Complained, "status <> 'complained'")),
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

/// The subscriber (id, address) and digest a report is about: our own
/// ids when the report carries them and they name someone whose address
/// is the one the report names (or it names none); else the address.
/// A subscriber's id and address.
type Who = (i64, String);

fn whom(
    tx: &Transaction,
    report: &Incoming,
) -> Result<(Option<Who>, Option<i64>), rusqlite::Error> {
    if let Some((digest, id)) = report.ours {
        let found: Option<String> = tx
            .prepare_cached("SELECT email FROM subscribers WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if let Some(email) = found
            && (report.verp
                || report
                    .recipient
                    .as_deref()
                    .is_none_or(|r| r.eq_ignore_ascii_case(&email)))
        {
            let digest: Option<i64> = tx
                .prepare_cached("SELECT id FROM digests WHERE id = ?1")?
                .query_row([digest], |r| r.get(0))
                .optional()?;
            return Ok((Some((id, email)), digest));
        }
    }
    let Some(recipient) = report.recipient.as_deref() else {
        return Ok((None, None));
    };
    let canonical = super::normalize_email(recipient).unwrap_or_else(|_| recipient.to_string());
    Ok((find(tx, &canonical)?.map(|s| (s.id, s.email)), None))
}

/// Whether `id` has had `rules.soft_limit` soft bounces within the window
/// with no digest taken in between: bounces of digests after the last
/// digest sent to them that did not bounce (among those before the latest
/// that did), and bounces that name no digest, all within the window.
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
                 SELECT digest_id, id FROM bounces
                 WHERE subscriber_id = ?1 AND kind IN ('soft', 'hard') AND received_at >= ?2
             ),
             clean AS (
                 SELECT max(d.digest_id) AS digest_id FROM deliveries d
                 WHERE d.subscriber_id = ?1 AND d.status = 'sent'
                   AND d.digest_id < (SELECT coalesce(max(digest_id), 0) FROM recent)
                   AND NOT EXISTS (SELECT 1 FROM bounces b
                                   WHERE b.subscriber_id = ?1 AND b.digest_id = d.digest_id)
             )
             SELECT count(DISTINCT digest_id) + (SELECT count(*) FROM recent WHERE digest_id IS NULL)
             FROM recent
             WHERE digest_id > coalesce((SELECT digest_id FROM clean), 0)",
        )?
        .query_row(params![id, timestamp(since)], |r| r.get(0))?;
    Ok(count >= i64::from(rules.soft_limit))
}

//! Scheduled publishing, shared by `newsletter publish` (from cron) and the
//! scheduler of `newsletter serve`: build the feeds with the posts due by
//! now, then send the digest when the schedule says a slot is due.
//!
//! Which slot was last handled is kept in the store (`schedule.last_slot`),
//! and sending goes through [`send::send_locked`] with its ledger and lock, so
//! cron, the server and a hand-run `send` never send one digest twice.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::build::{self, BuildError, BuildReport};
use crate::config::Config;
use crate::email::deliver::Progress;
use crate::email::lock::SendLock;
use crate::email::send::{self, SendOptions, SendReport};
use crate::schedule::{self, Due, Slots};
use crate::store::{self, Store};

/// The settings key of the last slot handled (sent, or skipped as too old).
const LAST_SLOT: &str = "schedule.last_slot";

/// A build, and what the WebSub hub could not be told.
#[derive(Debug)]
pub struct Rebuilt {
    pub report: BuildReport,
    /// The hub refused or could not be reached: a warning only, since the
    /// feeds are written (the caller prints or logs it).
    pub hub_warning: Option<anyhow::Error>,
}

/// Builds the feeds at `now` into `output_dir` and tells the WebSub hub
/// what changed: `build`, `publish` and the server's rebuilds.
pub fn rebuild(
    config: &Config,
    output_dir: &std::path::Path,
    now: DateTime<Utc>,
) -> Result<Rebuilt, BuildError> {
    let report = build::build(config, output_dir, now)?;
    let hub_warning = crate::websub::after_build(config, &report).err();
    Ok(Rebuilt {
        report,
        hub_warning,
    })
}

/// What the schedule asked for and what was done.
#[derive(Debug)]
pub enum Scheduled {
    /// No `[schedule] digest`: digests go out only with `send` (or `--send`).
    NoSchedule,
    /// Nothing due; the next slot, if any.
    NotDue { next: Option<DateTime<Utc>> },
    /// The latest slot was missed by more than `schedule.catch_up`.
    Skipped { slot: DateTime<Utc> },
    /// Another process is sending right now; nothing was done.
    Busy,
    /// A digest run: for a slot, for `--send`, or to finish an unfinished digest.
    Ran {
        slot: Option<DateTime<Utc>>,
        report: SendReport,
    },
}

/// The digest schedule of `config`, if it has one.
pub fn slots(config: &Config) -> Option<Slots> {
    let cron = config.schedule.digest.as_deref()?;
    // Config::parse has already checked the expression.
    Slots::parse(cron, config.site.timezone).ok()
}

/// Sends the digest if a slot is due at `now` (or always, with `force`),
/// and resumes an unfinished digest in any case.
///
/// Everything happens under the send lock, decision included, so two
/// processes at one slot (cron and the server) make one digest: the second
/// either finds the lock held ([`Scheduled::Busy`]) or the slot handled. A
/// slot is marked handled once its run has made a digest (even if delivery
/// then fails: the digest is resumed, never made again) or found nothing to
/// make. A run that fails before that leaves the slot due, so the next call
/// tries again until the slot is older than `schedule.catch_up`.
pub fn send_if_due(
    config: &Config,
    options: &SendOptions,
    now: DateTime<Utc>,
    force: bool,
    progress: &dyn Progress,
) -> Result<Scheduled> {
    // Nothing would deliver a digest (the callers refuse a schedule or
    // `--send` then): none is made or resumed, and no store created.
    if !config.delivers_mail() {
        return Ok(Scheduled::NoSchedule);
    }
    let Some(lock) = SendLock::try_acquire(&config.store.path)? else {
        return Ok(Scheduled::Busy);
    };
    let store = Store::open(&config.store.path)?;
    let unfinished = store.unfinished_digest()?.is_some();
    let slots = slots(config);
    if let Some(slots) = &slots {
        undo_a_mark_from_the_future(&store, slots, now, progress)?;
    }
    let decision = match &slots {
        Some(slots) => schedule::due(slots, last_slot(&store)?, now, config.schedule.catch_up),
        None => Due::NotDue,
    };

    // An unfinished digest goes first; while it is unfinished no new one is made.
    let mut resumed = None;
    if unfinished {
        let report = send::send_locked(config, options, now, progress, &lock)?;
        if store.unfinished_digest()?.is_some() {
            return Ok(Scheduled::Ran { slot: None, report });
        }
        resumed = Some(report);
    }
    let earlier = resumed.clone();
    let send_new = |slot: Option<DateTime<Utc>>| -> Result<Scheduled> {
        let before = store.next_digest_id()?;
        let result = send::send_locked(config, options, now, progress, &lock);
        if let Some(slot) = slot {
            let made = store.next_digest_id()? != before;
            if result.is_ok() || made {
                mark_handled(&store, slot)?;
            }
        }
        let report = match (result?, earlier) {
            (SendReport::NothingToSend | SendReport::NoSubscribers, Some(earlier)) => earlier,
            (report, _) => report,
        };
        Ok(Scheduled::Ran { slot, report })
    };
    match decision {
        Due::Send(slot) => send_new(Some(slot)),
        Due::Skip(slot) => {
            mark_handled(&store, slot)?;
            match resumed {
                _ if force => send_new(None),
                Some(report) => Ok(Scheduled::Ran { slot: None, report }),
                None => Ok(Scheduled::Skipped { slot }),
            }
        }
        Due::NotDue => match (resumed, &slots) {
            _ if force => send_new(None),
            (Some(report), _) => Ok(Scheduled::Ran { slot: None, report }),
            (None, None) => Ok(Scheduled::NoSchedule),
            (None, Some(slots)) => Ok(Scheduled::NotDue {
                next: slots.next_after(now),
            }),
        },
    }
}

/// The last slot handled, from the store.
pub fn last_slot(store: &Store) -> Result<Option<DateTime<Utc>>> {
    let Some(text) = store.setting(LAST_SLOT)? else {
        return Ok(None);
    };
    let slot = DateTime::parse_from_rfc3339(&text).with_context(|| {
        format!(
            "{}: the stored {LAST_SLOT} {text:?} is not a time",
            store.path().display()
        )
    })?;
    Ok(Some(slot.with_timezone(&Utc)))
}

/// A slot handled later than the next slot to come can only have been
/// marked by a clock that was ahead (or a `--now` in the future): left
/// alone it would stop every digest until that time. It goes back to the
/// latest slot at or before `now`, with a warning. A mark up to the next
/// slot is left: a run whose `now` was a moment later may have sent it.
/// A `--now` in the past (a look at the site as it was) is not a clock that
/// was ahead: a mark up to the next slot after the real time is left too,
/// or the slot it marks, sent already, would be due again for the next run.
/// Called under the send lock.
fn undo_a_mark_from_the_future(
    store: &Store,
    slots: &Slots,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<()> {
    let Some(last) = last_slot(store)? else {
        return Ok(());
    };
    if slots
        .next_after(now.max(Utc::now()))
        .is_none_or(|next| last <= next)
    {
        return Ok(());
    }
    let back = slots.latest_at_or_before(now);
    progress.warn(&format!(
        "the store marks the digest slot of {} as handled, later than now ({}): the clock was ahead when it was marked; scheduled digests go on from {}",
        last.to_rfc3339(),
        now.to_rfc3339(),
        back.map_or_else(|| "the first slot".to_string(), |slot| slot.to_rfc3339())
    ));
    match back {
        Some(slot) => store.set_setting(LAST_SLOT, &store::timestamp(slot))?,
        None => store.delete_setting(LAST_SLOT)?,
    }
    Ok(())
}

fn mark_handled(store: &Store, slot: DateTime<Utc>) -> Result<()> {
    // Never move backwards: a slow run must not undo a later one's mark.
    if last_slot(store)?.is_some_and(|last| last >= slot) {
        return Ok(());
    }
    store.set_setting(LAST_SLOT, &store::timestamp(slot))?;
    Ok(())
}

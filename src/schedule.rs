//! Digest schedule: cron slots in the site's time zone, and the catch-up rule.
//!
//! A slot is a wall clock time that the cron expression names, placed on the
//! time line in the site's time zone. Daylight saving makes that placement
//! ambiguous twice a year, so every expression follows the same two rules:
//!
//! - A wall clock time that happens twice (clocks go back) is one slot, at its
//!   first pass: readers never get the same digest twice.
//! - A wall clock time that does not happen (clocks go forward) is one slot,
//!   at the instant the clocks jump (02:30 on a 02:00 → 03:00 day is sent at
//!   03:00): the digest is late by less than the jump instead of lost. Every
//!   missing time of that jump shares that one slot.
//!
//! croner follows these rules only for expressions with one fixed minute and
//! hour; for others (`30 2,14 * * *`, `*/30 * * * *`) it fires on both passes
//! of a repeated hour and skips a missing one. So the search runs on the wall
//! clock (croner over `NaiveDateTime`, which has no time zone) and this module
//! places the wall clock times itself, in `Slots::instant_of`.
//!
//! That placement never goes backwards: a later wall clock time never gets an
//! earlier instant. Both searches rely on it to stop at the first slot on the
//! right side of `t`.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The five fields in order, with the values each takes, for error messages.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
];

/// How to write an expression, appended to messages about its shape.
const HOW_TO_WRITE: &str =
    "write five fields like \"0 9 * * MON\" (minute hour day-of-month month day-of-week)";

/// The slots of a cron expression, in a time zone.
#[derive(Debug, Clone)]
pub struct Slots {
    text: String,
    cron: Cron,
    timezone: Tz,
}

impl Slots {
    /// Parses a five-field cron expression (`"0 9 * * MON"`); day and month
    /// names and croner's `@daily`-style shorthands are accepted.
    ///
    /// The message of an error says what is wrong with the expression; the
    /// caller adds which key it came from.
    pub fn parse(text: &str, timezone: Tz) -> Result<Slots, String> {
        let text = text.trim();
        let cron = parse_five_fields(text)?;
        if never_fires(&cron) {
            return Err("never fires: no date has that day-of-month in that month \
                 (like 30 FEB); check those two fields"
                .into());
        }
        Ok(Slots {
            text: text.to_string(),
            cron,
            timezone,
        })
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // No wall clock time before `t`'s own has a slot after `t`; from
        // there, skip the few (a repeated hour's worth at most) placed at or
        // before `t`.
        let mut wall = t.with_timezone(&self.timezone).naive_local();
        let mut inclusive = true;
        loop {
            wall = self.cron.find_next_occurrence(&wall, inclusive).ok()?;
            let slot = self.instant_of(wall)?;
            if slot > t {
                return Some(slot);
            }
            inclusive = false;
        }
    }

    /// The latest slot at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = self.last_wall_at_or_before(t);
        let mut inclusive = true;
        loop {
            wall = self.cron.find_previous_occurrence(&wall, inclusive).ok()?;
            let slot = self.instant_of(wall)?;
            if slot <= t {
                return Some(slot);
            }
            inclusive = false;
        }
    }

    /// A wall clock time from which searching back finds every slot at or
    /// before `t`.
    ///
    /// That is `t`'s own wall clock time, except on the second pass through a
    /// repeated hour: the slots of that whole hour sit on its first pass,
    /// before `t`, so the search starts from `t` read with the offset of the
    /// first pass (the end of the repeated hour, or a little past it).
    fn last_wall_at_or_before(&self, t: DateTime<Utc>) -> NaiveDateTime {
        let local = t.with_timezone(&self.timezone).naive_local();
        match self.timezone.from_local_datetime(&local).earliest() {
            Some(first_pass) => t.with_timezone(&first_pass.offset().fix()).naive_local(),
            None => local,
        }
    }

    /// Places a wall clock time on the time line, by the rules in the module
    /// documentation: first pass of a repeated time, the jump for a missing one.
    fn instant_of(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.timezone.from_local_datetime(&wall).earliest() {
            Some(instant) => Some(instant.to_utc()),
            None => end_of_gap(self.timezone, wall),
        }
    }
}

/// The cron text, as configured (trimmed).
impl fmt::Display for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses `text` with croner, refusing seconds and years: a digest has no use
/// for them, and a six-field line is more likely a seconds field by mistake
/// than a wish.
fn parse_five_fields(text: &str) -> Result<Cron, String> {
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    if text.is_empty() {
        return Err(format!("is empty; {HOW_TO_WRITE}"));
    }
    if text.starts_with('@') {
        return parser.parse(text).map_err(|_| {
            format!(
                "is not a known shorthand; use @hourly, @daily, @weekly, @monthly \
                 or @yearly, or {HOW_TO_WRITE}"
            )
        });
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    match fields.len() {
        5 => {}
        count @ (6 | 7) => {
            return Err(format!(
                "has {count} fields, but seconds and years are not supported; {HOW_TO_WRITE}"
            ));
        }
        1 => return Err(format!("has 1 field; {HOW_TO_WRITE}")),
        count => return Err(format!("has {count} fields; {HOW_TO_WRITE}")),
    }
    parser
        .parse(text)
        .map_err(|error| blame_field(&parser, &fields).unwrap_or_else(|| error.to_string()))
}

/// Names the first field that croner refuses on its own, with the values that
/// field takes; croner's own messages do not say which field they mean.
fn blame_field(parser: &CronParser, fields: &[&str]) -> Option<String> {
    fields
        .iter()
        .zip(FIELDS)
        .enumerate()
        .find_map(|(position, (field, (name, values)))| {
            let mut alone = ["*"; 5];
            alone[position] = field;
            parser
                .parse(&alone.join(" "))
                .err()
                .map(|error| format!("the {name} field {field:?} is not valid ({values}): {error}"))
        })
}

/// Whether no date ever matches, as with `0 9 30 2 *`.
///
/// The Gregorian calendar, weekdays included, repeats every 400 years, so an
/// expression that matches at all matches within any 400 years. croner
/// searches forward to its year limit and no further, so a search from 400
/// years before that limit covers one whole cycle and no more: a few
/// milliseconds, paid once when the configuration is loaded.
fn never_fires(cron: &Cron) -> bool {
    let cycle_start = NaiveDate::from_ymd_opt(croner::YEAR_UPPER_LIMIT - 400, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .expect("a valid date");
    cron.find_next_occurrence(&cycle_start, true).is_err()
}

/// The instant the clocks jump over the missing wall clock time `wall`.
///
/// That is the first pass of the first wall clock time after the gap, found
/// by halving the whole seconds between `wall` (missing) and a day later
/// (present): no time zone jumps twice within a day.
fn end_of_gap(timezone: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let exists = |seconds: i64| {
        let later = wall.checked_add_signed(TimeDelta::seconds(seconds))?;
        timezone.from_local_datetime(&later).earliest()
    };
    let (mut missing, mut present) = (0_i64, 24 * 60 * 60);
    exists(present)?;
    while present - missing > 1 {
        let middle = missing + (present - missing) / 2;
        if exists(middle).is_some() {
            present = middle;
        } else {
            missing = middle;
        }
    }
    exists(present).map(|instant| instant.to_utc())
}

/// What to do about the schedule at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The latest slot is already handled (or there is none yet).
    NotDue,
    /// Send the digest for this slot.
    Send(DateTime<Utc>),
    /// This slot was missed by more than `catch_up`: record it handled, send nothing.
    Skip(DateTime<Utc>),
}

/// The catch-up rule: only the latest slot at or before `now` matters.
///
/// If it is handled, nothing is due. If it is at most `catch_up` old, send
/// it (a server restarted a little late still sends the digest). If it is
/// older, skip it: readers get no stale digest, and however many slots were
/// missed while the server was down, they end in one decision, never a burst.
pub fn due(
    slots: &Slots,
    last_handled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    catch_up: Duration,
) -> Due {
    let Some(slot) = slots.latest_at_or_before(now) else {
        return Due::NotDue;
    };
    if last_handled.is_some_and(|handled| handled >= slot) {
        return Due::NotDue;
    }
    // A window too long for TimeDelta is, in practice, no limit at all.
    let window = TimeDelta::from_std(catch_up).unwrap_or(TimeDelta::MAX);
    if now - slot <= window {
        Due::Send(slot)
    } else {
        Due::Skip(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEKLY: &str = "0 9 * * MON";
    const SIX_HOURS: Duration = Duration::from_secs(6 * 60 * 60);

    fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, hour, minute, 0)
            .single()
            .expect("a valid UTC time")
    }

    fn zone(name: &str) -> Tz {
        name.parse().expect("a known time zone")
    }

    fn slots(text: &str, timezone: &str) -> Slots {
        Slots::parse(text, zone(timezone)).expect("a valid expression")
    }

    /// The next `count` slots after `from`, each found from the one before.
    fn following(slots: &Slots, from: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        std::iter::successors(slots.next_after(from), |slot| slots.next_after(*slot))
            .take(count)
            .collect()
    }

    fn second() -> TimeDelta {
        TimeDelta::seconds(1)
    }

    #[test]
    fn weekly_in_utc() {
        let weekly = slots(WEEKLY, "UTC");
        // 2026-03-25 is a Wednesday.
        assert_eq!(
            following(&weekly, utc(2026, 3, 25, 12, 0), 2),
            [utc(2026, 3, 30, 9, 0), utc(2026, 4, 6, 9, 0)]
        );
        let slot = utc(2026, 3, 30, 9, 0);
        assert_eq!(weekly.next_after(slot - second()), Some(slot));
        assert_eq!(weekly.next_after(slot), Some(utc(2026, 4, 6, 9, 0)));
        assert_eq!(weekly.latest_at_or_before(slot), Some(slot));
        assert_eq!(
            weekly.latest_at_or_before(slot - second()),
            Some(utc(2026, 3, 23, 9, 0))
        );
        assert_eq!(
            weekly.latest_at_or_before(utc(2026, 4, 2, 0, 0)),
            Some(slot)
        );
    }

    #[test]
    fn weekly_stays_at_nine_in_berlin_across_both_changes() {
        let weekly = slots(WEEKLY, "Europe/Berlin");
        // Clocks go forward on Sunday 2026-03-29: 09:00 CET, then 09:00 CEST.
        assert_eq!(
            following(&weekly, utc(2026, 3, 20, 0, 0), 2),
            [utc(2026, 3, 23, 8, 0), utc(2026, 3, 30, 7, 0)]
        );
        // Clocks go back on Sunday 2026-10-25: 09:00 CEST, then 09:00 CET.
        assert_eq!(
            following(&weekly, utc(2026, 10, 16, 0, 0), 2),
            [utc(2026, 10, 19, 7, 0), utc(2026, 10, 26, 8, 0)]
        );
        assert_eq!(
            weekly.latest_at_or_before(utc(2026, 3, 30, 6, 59)),
            Some(utc(2026, 3, 23, 8, 0))
        );
        assert_eq!(
            weekly.latest_at_or_before(utc(2026, 10, 26, 8, 0)),
            Some(utc(2026, 10, 26, 8, 0))
        );
    }

    #[test]
    fn weekly_stays_at_nine_in_new_york_across_both_changes() {
        let weekly = slots(WEEKLY, "America/New_York");
        // Clocks go forward on Sunday 2026-03-08: 09:00 EST, then 09:00 EDT.
        assert_eq!(
            following(&weekly, utc(2026, 2, 27, 0, 0), 2),
            [utc(2026, 3, 2, 14, 0), utc(2026, 3, 9, 13, 0)]
        );
        // Clocks go back on Sunday 2026-11-01: 09:00 EDT, then 09:00 EST.
        assert_eq!(
            following(&weekly, utc(2026, 10, 23, 0, 0), 2),
            [utc(2026, 10, 26, 13, 0), utc(2026, 11, 2, 14, 0)]
        );
        assert_eq!(
            weekly.latest_at_or_before(utc(2026, 11, 2, 13, 59)),
            Some(utc(2026, 10, 26, 13, 0))
        );
    }

    #[test]
    fn missing_time_fires_once_when_the_clocks_jump() {
        // Berlin 2026-03-29: 02:00 CET (01:00 UTC) becomes 03:00 CEST.
        let nightly = slots("30 2 * * *", "Europe/Berlin");
        let jump = utc(2026, 3, 29, 1, 0);
        assert_eq!(
            following(&nightly, utc(2026, 3, 28, 0, 0), 3),
            [utc(2026, 3, 28, 1, 30), jump, utc(2026, 3, 30, 0, 30)]
        );
        assert_eq!(nightly.latest_at_or_before(jump), Some(jump));
        assert_eq!(
            nightly.latest_at_or_before(jump - second()),
            Some(utc(2026, 3, 28, 1, 30))
        );

        // New York 2026-03-08: 02:00 EST (07:00 UTC) becomes 03:00 EDT.
        // croner itself skips 02:30 here, as the hour field has two values.
        let twice_daily = slots("30 2,14 * * *", "America/New_York");
        assert_eq!(
            following(&twice_daily, utc(2026, 3, 7, 20, 0), 3),
            [
                utc(2026, 3, 8, 7, 0),
                utc(2026, 3, 8, 18, 30),
                utc(2026, 3, 9, 6, 30)
            ]
        );
    }

    #[test]
    fn all_missing_times_of_a_jump_share_one_slot() {
        // 02:00 and 02:30 do not exist; both fall on 03:00 CEST, as does
        // 03:00 itself.
        let half_hourly = slots("*/30 * * * *", "Europe/Berlin");
        assert_eq!(
            following(&half_hourly, utc(2026, 3, 29, 0, 15), 3),
            [
                utc(2026, 3, 29, 0, 30),
                utc(2026, 3, 29, 1, 0),
                utc(2026, 3, 29, 1, 30)
            ]
        );
    }

    #[test]
    fn repeated_time_fires_once_on_its_first_pass() {
        // New York 2026-11-01: 01:00-01:59 happens in EDT (05:xx UTC), then
        // again in EST (06:xx UTC).
        let nightly = slots("30 1 * * *", "America/New_York");
        let first_pass = utc(2026, 11, 1, 5, 30);
        assert_eq!(
            following(&nightly, utc(2026, 10, 31, 0, 0), 3),
            [
                utc(2026, 10, 31, 5, 30),
                first_pass,
                utc(2026, 11, 2, 6, 30)
            ]
        );
        let second_pass = utc(2026, 11, 1, 6, 30);
        assert_eq!(nightly.latest_at_or_before(second_pass), Some(first_pass));
        // At 01:10 on the second pass, 01:30 is still behind on the first.
        assert_eq!(
            nightly.latest_at_or_before(utc(2026, 11, 1, 6, 10)),
            Some(first_pass)
        );
        assert_eq!(
            due(&nightly, Some(first_pass), second_pass, SIX_HOURS),
            Due::NotDue
        );

        // croner itself fires twice here, as the hour field has two values.
        let twice_daily = slots("30 1,13 * * *", "America/New_York");
        assert_eq!(
            following(&twice_daily, utc(2026, 10, 31, 20, 0), 2),
            [first_pass, utc(2026, 11, 1, 18, 30)]
        );

        // Berlin 2026-10-25: 02:00-02:59 in CEST (00:xx UTC), then in CET.
        let berlin = slots("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            following(&berlin, utc(2026, 10, 24, 12, 0), 2),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
        );
        assert_eq!(
            berlin.latest_at_or_before(utc(2026, 10, 25, 1, 45)),
            Some(utc(2026, 10, 25, 0, 30))
        );
    }

    /// Every slot, found forwards, is found again backwards and from just
    /// before it, through a year with both changes.
    #[test]
    fn both_searches_agree_on_every_slot() {
        for (text, timezone) in [
            ("30 2 * * *", "Europe/Berlin"),
            ("*/20 1-3 * * SUN", "Europe/Berlin"),
            ("30 1 * * *", "America/New_York"),
            ("0,30 1,2 * * *", "America/New_York"),
            (WEEKLY, "UTC"),
        ] {
            let slots = slots(text, timezone);
            let mut previous = slots
                .latest_at_or_before(utc(2026, 1, 1, 0, 0))
                .expect("a slot in 2025");
            let mut slot = slots.next_after(previous).expect("a next slot");
            while slot < utc(2027, 1, 1, 0, 0) {
                assert!(slot > previous, "{text} in {timezone}: {slot}");
                assert_eq!(slots.latest_at_or_before(slot), Some(slot), "{text}");
                assert_eq!(slots.next_after(slot - second()), Some(slot), "{text}");
                assert_eq!(
                    slots.latest_at_or_before(slot - second()),
                    Some(previous),
                    "{text} in {timezone}: before {slot}"
                );
                previous = slot;
                slot = slots.next_after(slot).expect("a next slot");
            }
        }
    }

    #[test]
    fn due_sends_a_slot_just_passed() {
        let weekly = slots(WEEKLY, "UTC");
        let slot = utc(2026, 3, 30, 9, 0);
        assert_eq!(
            due(&weekly, None, slot + TimeDelta::minutes(1), SIX_HOURS),
            Due::Send(slot)
        );
        assert_eq!(due(&weekly, None, slot, SIX_HOURS), Due::Send(slot));
        assert_eq!(
            due(&weekly, Some(utc(2026, 3, 23, 9, 0)), slot, SIX_HOURS),
            Due::Send(slot)
        );
    }

    #[test]
    fn due_sends_up_to_the_catch_up_boundary_and_skips_after() {
        let weekly = slots(WEEKLY, "UTC");
        let slot = utc(2026, 3, 30, 9, 0);
        let boundary = utc(2026, 3, 30, 15, 0);
        assert_eq!(due(&weekly, None, boundary, SIX_HOURS), Due::Send(slot));
        assert_eq!(
            due(&weekly, None, boundary + second(), SIX_HOURS),
            Due::Skip(slot)
        );
        assert_eq!(
            due(&weekly, None, utc(2026, 4, 2, 0, 0), SIX_HOURS),
            Due::Skip(slot)
        );
    }

    #[test]
    fn due_is_quiet_once_the_slot_is_handled() {
        let weekly = slots(WEEKLY, "UTC");
        let slot = utc(2026, 3, 30, 9, 0);
        let now = utc(2026, 3, 30, 9, 5);
        assert_eq!(due(&weekly, Some(slot), now, SIX_HOURS), Due::NotDue);
        // A slot handled late, or by a clock running ahead, counts too.
        assert_eq!(due(&weekly, Some(now), now, SIX_HOURS), Due::NotDue);
        // Days later, with the slot handled, nothing is skipped either.
        assert_eq!(
            due(&weekly, Some(slot), utc(2026, 4, 5, 0, 0), SIX_HOURS),
            Due::NotDue
        );
    }

    #[test]
    fn due_decides_only_about_the_latest_of_several_missed_slots() {
        let weekly = slots(WEEKLY, "UTC");
        let handled = Some(utc(2026, 3, 9, 9, 0));
        // 03-16 and 03-23 were missed; only 03-30 is considered.
        let latest = utc(2026, 3, 30, 9, 0);
        assert_eq!(
            due(&weekly, handled, utc(2026, 3, 30, 10, 0), SIX_HOURS),
            Due::Send(latest)
        );
        assert_eq!(
            due(&weekly, handled, utc(2026, 4, 1, 10, 0), SIX_HOURS),
            Due::Skip(latest)
        );
    }

    #[test]
    fn due_is_quiet_before_the_first_slot() {
        let weekly = slots(WEEKLY, "UTC");
        assert_eq!(
            due(&weekly, None, DateTime::<Utc>::MIN_UTC, SIX_HOURS),
            Due::NotDue
        );
    }

    fn parse_error(text: &str) -> String {
        Slots::parse(text, zone("UTC")).expect_err(text)
    }

    #[test]
    fn parse_accepts_names_shorthands_and_spacing() {
        assert_eq!(slots("  0 9 * * mon ", "UTC").to_string(), "0 9 * * mon");
        assert_eq!(
            slots("0 9 1 JAN *", "UTC").next_after(utc(2026, 3, 1, 0, 0)),
            Some(utc(2027, 1, 1, 9, 0))
        );
        assert_eq!(
            slots("@weekly", "UTC").next_after(utc(2026, 3, 25, 0, 0)),
            Some(utc(2026, 3, 29, 0, 0))
        );
    }

    #[test]
    fn parse_refuses_a_seconds_field() {
        let message = parse_error("0 0 9 * * MON");
        assert!(message.starts_with("has 6 fields"), "{message}");
        assert!(message.contains("seconds"), "{message}");
    }

    #[test]
    fn parse_refuses_empty_text() {
        for text in ["", "   "] {
            let message = parse_error(text);
            assert!(message.starts_with("is empty"), "{message}");
        }
    }

    #[test]
    fn parse_refuses_garbage_naming_the_field() {
        assert!(parse_error("every monday").starts_with("has 2 fields"));
        assert!(parse_error("@fortnightly").contains("shorthand"));

        let message = parse_error("0 25 * * MON");
        assert!(message.starts_with("the hour field \"25\""), "{message}");
        let message = parse_error("0 9 * * FUNDAY");
        assert!(message.starts_with("the day-of-week field"), "{message}");
        let message = parse_error("x 9 * * MON");
        assert!(message.starts_with("the minute field \"x\""), "{message}");
    }

    #[test]
    fn parse_refuses_an_expression_that_never_fires() {
        for text in ["0 9 30 2 *", "0 9 31 APR *"] {
            assert!(parse_error(text).starts_with("never fires"), "{text}");
        }
        // 29 February does come, every four years.
        assert_eq!(
            slots("0 9 29 2 *", "UTC").next_after(utc(2026, 1, 1, 0, 0)),
            Some(utc(2028, 2, 29, 9, 0))
        );
    }
}

//! Post dates in the forms generators write them.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// The accepted forms, for error messages.
pub const DATE_FORMS: &str =
    "2017-09-04, 2017-09-04T10:00:00+02:00 (RFC 3339) or 2017-09-04 10:00:00 +0200";

/// Parses a post date. Dates and times without an offset are in `zone`.
pub fn parse_date(text: &str, zone: Tz) -> Result<DateTime<FixedOffset>, String> {
    let text = text.trim();
    if let Ok(date) = DateTime::parse_from_rfc3339(text) {
        return Ok(date);
    }
    for form in [
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M %z",
        "%Y-%m-%dT%H:%M:%S%z",
    ] {
        if let Ok(date) = DateTime::parse_from_str(text, form) {
            return Ok(date);
        }
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|form| NaiveDateTime::parse_from_str(text, form).ok());
    if let Some(local) = local {
        return match zone.from_local_datetime(&local).earliest() {
            Some(date) => Ok(date.fixed_offset()),
            None => Err(format!(
                "{text:?} does not exist in time zone {zone} (clocks skip it); give an offset"
            )),
        };
    }
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(day) => start_of_day(day, zone)
            .ok_or_else(|| format!("{text:?} is not a date in time zone {zone}; give an offset")),
        Err(_) => Err(format!("{text:?} is not a date; write {DATE_FORMS}")),
    }
}

/// The first moment of `day` in `zone`: midnight, or where clocks skip
/// midnight (Chile, and Brazil until 2019, move them at 00:00) the end of
/// that jump, as Hugo and Go read such a date.
fn start_of_day(day: NaiveDate, zone: Tz) -> Option<DateTime<FixedOffset>> {
    let midnight = day.and_time(NaiveTime::MIN);
    let at = |seconds: i64| {
        let local = midnight.checked_add_signed(chrono::TimeDelta::seconds(seconds))?;
        zone.from_local_datetime(&local).earliest()
    };
    if let Some(date) = at(0) {
        return Some(date.fixed_offset());
    }
    // No zone skips more than a day (Samoa skipped 2011-12-30 whole):
    // halve the seconds between the missing midnight and a present moment.
    let (mut missing, mut present) = (0_i64, 48 * 60 * 60);
    at(present)?;
    while present - missing > 1 {
        let middle = missing + (present - missing) / 2;
        if at(middle).is_some() {
            present = middle;
        } else {
            missing = middle;
        }
    }
    at(present).map(|date| date.fixed_offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> String {
        parse_date(text, Tz::UTC).unwrap().to_rfc3339()
    }

    #[test]
    fn bare_date_is_midnight_in_the_site_zone() {
        assert_eq!(utc("2017-09-04"), "2017-09-04T00:00:00+00:00");
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            parse_date("2017-09-04", berlin).unwrap().to_rfc3339(),
            "2017-09-04T00:00:00+02:00"
        );
        assert_eq!(
            parse_date("2017-01-04", berlin).unwrap().to_rfc3339(),
            "2017-01-04T00:00:00+01:00"
        );
    }

    #[test]
    fn rfc3339_and_jekyll_forms() {
        assert_eq!(utc("2017-09-04T10:00:00Z"), "2017-09-04T10:00:00+00:00");
        assert_eq!(
            utc("2017-09-04T10:00:00+02:00"),
            "2017-09-04T10:00:00+02:00"
        );
        assert_eq!(
            utc("2017-09-04 10:00:00 +0200"),
            "2017-09-04T10:00:00+02:00"
        );
        assert_eq!(
            utc("2017-09-04 10:00:00 -0500"),
            "2017-09-04T10:00:00-05:00"
        );
        assert_eq!(utc("2017-09-04 10:00:00"), "2017-09-04T10:00:00+00:00");
        assert_eq!(utc("2017-09-04T10:00:00"), "2017-09-04T10:00:00+00:00");
        assert_eq!(utc("2017-09-04 10:00"), "2017-09-04T10:00:00+00:00");
        assert_eq!(
            utc("2017-09-04 10:00:00 +02:00"),
            "2017-09-04T10:00:00+02:00"
        );
        assert_eq!(utc("2017-09-04 10:00:00+0200"), "2017-09-04T10:00:00+02:00");
        assert_eq!(
            utc("2017-09-04T10:00:00.5Z"),
            "2017-09-04T10:00:00.500+00:00"
        );
    }

    #[test]
    fn invalid_dates_say_what_is_accepted() {
        for bad in ["2017-13-01", "2017-02-30", "yesterday", "04/09/2017", ""] {
            let err = parse_date(bad, Tz::UTC).unwrap_err();
            assert!(err.contains("2017-09-04"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_day_that_starts_after_a_jump_starts_at_its_end() {
        let santiago: Tz = "America/Santiago".parse().unwrap();
        assert_eq!(
            parse_date("2024-09-08", santiago).unwrap().to_rfc3339(),
            "2024-09-08T01:00:00-03:00"
        );
        // Samoa skipped 2011-12-30 whole: its first moment is the 31st's.
        let apia: Tz = "Pacific/Apia".parse().unwrap();
        assert_eq!(
            parse_date("2011-12-30", apia).unwrap().to_rfc3339(),
            "2011-12-31T00:00:00+14:00"
        );
    }

    #[test]
    fn a_local_time_in_a_dst_gap_is_refused() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert!(parse_date("2021-03-28 02:30:00", berlin).is_err());
    }
}

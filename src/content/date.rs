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
    .find_map(|form| NaiveDateTime::parse_from_str(text, form).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(NaiveTime::MIN))
    });
    let Some(local) = local else {
        return Err(format!("{text:?} is not a date; write {DATE_FORMS}"));
    };
    match zone.from_local_datetime(&local).earliest() {
        Some(date) => Ok(date.fixed_offset()),
        None => Err(format!(
            "{text:?} does not exist in time zone {zone} (clocks skip it); give an offset"
        )),
    }
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
    fn a_local_time_in_a_dst_gap_is_refused() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert!(parse_date("2021-03-28 02:30:00", berlin).is_err());
    }
}

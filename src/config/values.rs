//! Value checks more than one section uses: durations and loopback hosts.

use std::time::Duration;

use super::{ConfigError, Source};

/// Parses a duration such as "48h" or "30m" at `key`.
pub(super) fn duration(
    source: &Source,
    key: &'static str,
    text: &str,
) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        source.invalid(
            key,
            format!("= {text:?} is not a duration ({e}); write it like \"48h\" or \"30m\""),
        )
    })
}

/// A duration from `least` to `most` seconds; `advice` ends the message
/// for one too short and says why. Bounded above so that no later sum or
/// conversion (a deadline, a `chrono` time) can overflow.
pub(super) fn duration_within(
    source: &Source,
    key: &'static str,
    text: &str,
    (least, most): (u64, u64),
    advice: &str,
) -> Result<Duration, ConfigError> {
    let value = duration(source, key, text)?;
    if value < Duration::from_secs(least) {
        return Err(source.invalid(key, format!("= {text:?} is too short{advice}")));
    }
    if value > Duration::from_secs(most) {
        return Err(source.invalid(
            key,
            format!("= {text:?} is too long: at most \"{}\"", whole_units(most)),
        ));
    }
    Ok(value)
}

/// `seconds` in the largest unit that divides it, as the config takes it
/// back: "366days", "1h", "90s" (humantime would say "1year 18h", its year
/// being 365.25 days).
fn whole_units(seconds: u64) -> String {
    match seconds {
        0 => "0s".into(),
        s if s.is_multiple_of(DAY) => format!("{}days", s / DAY),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A number from `least` to `most` (both included) at `key`.
pub(super) fn number_within<T>(
    source: &Source,
    key: &'static str,
    value: T,
    (least, most): (T, T),
    meaning: &str,
) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    // Written so that NaN (which TOML allows) is out of range too.
    if !(value >= least && value <= most) {
        return Err(source.invalid(
            key,
            format!("= {value} is out of range: use {least} to {most}{meaning}"),
        ));
    }
    Ok(value)
}

/// One day, in seconds.
pub(super) const DAY: u64 = 24 * 3600;

/// True for `localhost` and loopback IP addresses.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A section written as one table (`[name]`) or an array of tables
/// (`[[name]]`). A visitor rather than an untagged enum, so a mistake
/// inside a table (an unknown key, a missing one) is reported as itself,
/// not as "did not match any variant".
#[derive(Debug)]
pub(super) struct OneOrMany<T>(pub Vec<T>);

/// A section that may be one table or several: its name, for errors.
pub(super) trait Section {
    const NAME: &'static str;
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: serde::Deserialize<'de> + Section> serde::Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Tables<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de> + Section> serde::de::Visitor<'de> for Tables<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a table [{0}] or tables [[{0}]]", T::NAME)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let one = T::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(OneOrMany(vec![one]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                <Vec<T> as serde::Deserialize>::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )
                .map(OneOrMany)
            }
        }
        deserializer.deserialize_any(Tables(std::marker::PhantomData))
    }
}

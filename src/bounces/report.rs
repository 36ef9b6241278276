//! `newsletter digests`: what became of each digest, and the warnings a
//! sender needs before receivers start refusing its mail.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use crate::config::Config;
use crate::store::{DigestReport, Store};

/// Receivers act on a complaint rate above 0.1 % (Gmail's and Yahoo's
/// bulk sender rules say to stay under 0.1 %, and never reach 0.3 %).
pub const COMPLAINT_ALERT: f64 = 0.001;

/// A warning for each digest of the last 30 days whose bounce rate passes
/// `bounces.alert_rate` or whose complaint rate passes 0.1 %.
pub fn alerts(store: &Store, config: &Config, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
    let since = crate::store::timestamp(now - Duration::days(30));
    let mut found = Vec::new();
    for digest in store.digest_reports()? {
        if digest.created_at < since {
            break;
        }
        if digest.bounce_rate() > config.bounces.alert_rate {
            found.push(format!(
                "digest {} ({}) bounced for {} of {} recipients ({:.1} %, over bounces.alert_rate {:.1} %): \
                 receivers distrust senders whose mail bounces; see `newsletter digests show {}`",
                digest.id,
                digest.subject,
                digest.hard + digest.soft,
                digest.sent + digest.failed,
                100.0 * digest.bounce_rate(),
                100.0 * config.bounces.alert_rate,
                digest.id
            ));
        }
        if digest.complaint_rate() > COMPLAINT_ALERT {
            found.push(format!(
                "digest {} ({}) drew {} spam complaints from {} recipients ({:.2} %, over 0.1 %): \
                 receivers start filtering a sender above this; see `newsletter digests show {}`",
                digest.id,
                digest.subject,
                digest.complaints,
                digest.sent + digest.failed,
                100.0 * digest.complaint_rate(),
                digest.id
            ));
        }
    }
    Ok(found)
}

/// The table `newsletter digests` prints: one line per digest, newest first.
pub fn table(reports: &[DigestReport]) -> String {
    let mut out = String::from(
        "digest\tdate\trecipients\tsent\tfailed\tpending\tbounced (hard)\tbounced (soft)\tcomplaints\tunsubscribes\tsubject\n",
    );
    for d in reports {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            d.id,
            d.created_at.get(..10).unwrap_or(&d.created_at),
            d.recipients,
            d.sent,
            d.failed,
            d.pending,
            d.hard,
            d.soft,
            d.complaints,
            d.unsubscribes,
            crate::text::one_line(&d.subject)
        )
        .expect("writing to a String cannot fail");
    }
    out
}

//! `newsletter subscribers`: add, remove, list, import and export addresses.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::store::{
    Added, ImportRow, Imported, Status, StatusChange, Store, Subscriber, normalize_email,
};
use crate::topics::{self, Topics};

/// A display name on one line: control characters (a line break could
/// otherwise become a mail header) turn into spaces, runs of space into one.
pub fn clean_name(name: &str) -> String {
    crate::text::one_line(name)
}

/// A `subscribers add`: the address and what comes with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewSubscriber<'a> {
    pub email: &'a str,
    pub name: &'a str,
    /// `--topics` as typed (`releases,community`); `None`: every topic,
    /// those added later too.
    pub topics: Option<&'a str>,
    /// `--welcome`: queue a welcome mail for a new address.
    pub welcome: bool,
}

/// Adds an active subscriber, with the topics chosen and (with `welcome`)
/// a welcome mail queued, in one transaction; the next `send` or `publish`
/// (or the server, when it next delivers welcomes) sends it. With
/// `[welcome] enabled = false` the address is added without one, and the
/// line says so. An address already there is reported, not changed: its
/// topics neither.
pub fn add(
    store: &mut Store,
    config: &Config,
    new: &NewSubscriber,
    now: DateTime<Utc>,
) -> Result<String> {
    let email = normalize_email(new.email).map_err(anyhow::Error::msg)?;
    // `Some(None)`: `--topics` named every topic.
    let topics = new
        .topics
        .map(|keys| choice(config, "--topics", keys))
        .transpose()?;
    let welcome = new.welcome && config.welcome.enabled;
    let added = store.add_active(
        &email,
        &clean_name(new.name),
        topics.as_ref().and_then(Option::as_deref),
        welcome,
        now,
    )?;
    let new_row = matches!(added, Added::New(_));
    let topics = topics_note(config, &email, new_row, topics.as_ref());
    let welcome = welcome_note(config, new.welcome, new_row);
    Ok(match added {
        Added::New(_) => format!("added {email}{topics}{welcome}"),
        Added::Exists(s) => already(&email, s.status) + &welcome + &topics,
    })
}

/// What [`add`] says of the topics asked for (`Some(None)`: every topic).
fn topics_note(
    config: &Config,
    email: &str,
    new_row: bool,
    topics: Option<&Option<String>>,
) -> String {
    match (topics, new_row) {
        (None, _) => String::new(),
        (Some(stored), true) => format!(" with {}", topic_list(config, stored.as_deref())),
        (Some(_), false) => format!(
            "; their topics are not changed: `newsletter subscribers topics {email} --set KEYS` does that"
        ),
    }
}

/// What [`add`] says of the welcome mail asked for.
fn welcome_note(config: &Config, asked: bool, new_row: bool) -> String {
    match (asked, config.welcome.enabled, new_row) {
        (false, _, _) => String::new(),
        (true, false, _) => format!(
            " (no welcome mail: [welcome] enabled = false in {})",
            config.path.display()
        ),
        (true, true, true) => {
            "; their welcome mail goes out with the next `newsletter send` or `publish`".into()
        }
        (true, true, false) => " (no welcome mail)".into(),
    }
}

/// What [`add`] says of an address already there.
fn already(email: &str, status: Status) -> String {
    if status.is_suppressed() {
        format!(
            "{email} is {status} and stays so: it is not mailed. If they want the mail again, \
             `newsletter subscribers reactivate {email}`, or let them sign up again"
        )
    } else {
        format!("{email} is already a subscriber ({status})")
    }
}

/// A choice of topics as typed after `flag` (`releases,community`, or
/// `all`), as the store keeps it: `None` for every topic, those added
/// later too.
fn choice(config: &Config, flag: &str, keys: &str) -> Result<Option<String>> {
    if keys.trim() == "all" {
        return Ok(None);
    }
    let topics =
        topics::parse_keys(config, keys.split(',')).with_context(|| format!("{flag} {keys:?}"))?;
    Ok(topics.stored(config))
}

/// `the topics releases, community`, or `every topic` for `None`.
fn topic_list(config: &Config, stored: Option<&str>) -> String {
    match stored {
        None => "every topic".into(),
        Some(_) => {
            let keys: Vec<&str> = Topics::of_reader(config, stored)
                .iter(config)
                .map(|t| t.key.as_str())
                .collect();
            format!("the topics {}", keys.join(", "))
        }
    }
}

/// `subscribers topics EMAIL [--set KEYS]`: sets a subscriber's topics
/// when `set` is given (`all`: every topic, those added later too), then
/// says which topics they get, one `yes`/`no`, key and label a line.
pub fn show_topics(
    store: &Store,
    config: &Config,
    email: &str,
    set: Option<&str>,
) -> Result<String> {
    let email = normalize_email(email).map_err(anyhow::Error::msg)?;
    let Some(mut subscriber) = store.subscriber(&email)? else {
        bail!("{email} is not a subscriber (see `newsletter subscribers list`)");
    };
    let mut out = String::new();
    if let Some(keys) = set {
        subscriber.topics = choice(config, "--set", keys)?;
        store.set_topics(subscriber.id, subscriber.topics.as_deref())?;
        out += &format!(
            "{} now gets {}\n",
            subscriber.email,
            topic_list(config, subscriber.topics.as_deref())
        );
    }
    out += &describe_topics(config, &subscriber);
    Ok(out)
}

/// Which topics of the config a subscriber gets, and the keys they chose
/// that the config no longer has.
fn describe_topics(config: &Config, subscriber: &Subscriber) -> String {
    let email = &subscriber.email;
    let stored = subscriber.topics.as_deref();
    let mut out = if config.topics.is_empty() {
        format!(
            "{email} ({}) gets every post: the site has no topics ([[topics]] in {})\n",
            subscriber.status,
            config.path.display()
        )
    } else {
        let gets = Topics::of_reader(config, stored);
        let mut out = match stored {
            None => format!(
                "{email} ({}) never chose, so they get every topic, including ones added later:\n",
                subscriber.status
            ),
            Some(_) => format!(
                "{email} ({}) chose {} of {} topics:\n",
                subscriber.status,
                gets.iter(config).count(),
                config.topics.len()
            ),
        };
        for (i, topic) in config.topics.iter().enumerate() {
            let yes = if gets.contains(i) { "yes" } else { "no" };
            out += &format!("{yes}\t{}\t{}\n", topic.key, topic.label);
        }
        out
    };
    for key in topics::vanished_keys(config, stored) {
        out += &format!(
            "they also chose {key:?}, which {} no longer has: they get nothing for it\n",
            config.path.display()
        );
    }
    out
}

/// What `check` says of each topic key that subscribers chose and the
/// config no longer has: those readers get nothing for it.
pub fn vanished_topics(store: &Store, config: &Config) -> Result<Vec<String>> {
    let choices = store.stored_topic_choices()?;
    let keys = topics::vanished_keys(config, choices.iter().map(|(keys, _)| keys.as_str()));
    Ok(keys
        .into_iter()
        .map(|key| {
            let readers: usize = choices
                .iter()
                .filter(|(keys, _)| keys.split(',').any(|k| k == key))
                .map(|(_, n)| n)
                .sum();
            format!(
                "topic {key:?} was chosen by {readers} subscriber(s) but is not in [[topics]] of \
                 {}: they no longer get anything for it; add it back, or change their topics \
                 with `newsletter subscribers topics EMAIL --set KEYS`",
                config.path.display()
            )
        })
        .collect())
}

/// Makes a subscriber active again, whatever their status.
pub fn reactivate(store: &Store, email: &str, now: DateTime<Utc>) -> Result<String> {
    let email = normalize_email(email).map_err(anyhow::Error::msg)?;
    let Some(subscriber) = store.subscriber(&email)? else {
        bail!("{email} is not a subscriber (see `newsletter subscribers list`)");
    };
    let email = &subscriber.email;
    Ok(
        match store.change_status(subscriber.id, StatusChange::Reactivate, now)? {
            crate::store::Changed::Already => format!("{email} is already active"),
            _ => format!("{email} is active again (it was {})", subscriber.status),
        },
    )
}

/// Marks a subscriber unsubscribed; the row stays so the address is never
/// mailed again. With `forget`, erases them instead ([`Store::forget`]).
pub fn remove(store: &mut Store, email: &str, forget: bool, now: DateTime<Utc>) -> Result<String> {
    let email = normalize_email(email).map_err(anyhow::Error::msg)?;
    let Some(subscriber) = store.subscriber(&email)? else {
        if forget && store.is_forgotten(&email)? {
            return Ok(format!("{email} was already erased"));
        }
        bail!("{email} is not a subscriber (see `newsletter subscribers list`)");
    };
    if forget {
        store.forget(subscriber.id, now)?;
        return Ok(format!(
            "{email} is erased: their row and delivery records are deleted; only a salted hash \
             is kept, so an import never adds the address again"
        ));
    }
    store.change_status(subscriber.id, StatusChange::Remove, now)?;
    Ok(format!("{email} is unsubscribed"))
}

/// Writes `email<TAB>name<TAB>status<TAB>since` lines.
pub fn list(store: &Store, status: Option<Status>, out: &mut dyn Write) -> Result<usize> {
    let mut n = 0;
    let mut result = Ok(());
    store.for_each_subscriber(status, |s| {
        n += 1;
        if result.is_ok() {
            result = writeln!(
                out,
                "{}\t{}\t{}\t{}",
                s.email, s.name, s.status, s.created_at
            );
        }
    })?;
    result?;
    Ok(n)
}

/// Writes every subscriber as CSV with a header line: `email`, `name`,
/// `status`, `created_at`, `key` (what their links name them by; an
/// import into another store keeps it, so links already mailed still work
/// there and name no one else) and `topics` (the keys they chose, comma
/// separated; empty: every topic).
pub fn export(store: &Store, out: &mut dyn Write) -> Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["email", "name", "status", "created_at", "key", "topics"])?;
    let mut result = Ok(());
    store.for_each_subscriber(None, |s| {
        if result.is_ok() {
            result = csv.write_record([
                &*defuse_formula(&s.email),
                &*defuse_formula(&s.name),
                s.status.as_str(),
                &s.created_at,
                &s.key,
                s.topics.as_deref().unwrap_or(""),
            ]);
        }
    })?;
    result?;
    csv.flush()?;
    Ok(())
}

/// First characters that make a spreadsheet read a cell as a formula
/// (OWASP's list for CSV injection).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// True when a spreadsheet would read `cell` as a formula, or when it is
/// one that [`defuse_formula`] already escaped (so a `'` typed before a
/// formula character survives the round trip).
fn needs_defusing(cell: &str) -> bool {
    cell.starts_with(FORMULA_STARTS) || cell.strip_prefix('\'').is_some_and(needs_defusing)
}

/// A cell a spreadsheet will show as text: one that starts like a formula
/// (a name typed into the public sign-up form such as `=HYPERLINK(...)`)
/// gets a leading `'`, which spreadsheets hide and [`import`] removes.
fn defuse_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    if needs_defusing(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// A cell of an exported file as it was before [`defuse_formula`].
fn restore_formula(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_defusing(rest) => rest,
        _ => cell,
    }
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Which kind of file it was read as, in words.
    pub format: String,
    pub added: usize,
    pub existing: usize,
    /// Already there and now unsubscribed or bounced, as the file says.
    pub suppressed: usize,
    /// Erased earlier (`remove --forget`), so not imported.
    pub forgotten: usize,
    /// `path:line: what is wrong` for each row not imported.
    pub problems: Vec<String>,
    /// `path:line: …` for rows imported with a change the user should know.
    pub warnings: Vec<String>,
}

/// The kinds of file `import` reads, told apart by their header line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Ours (`subscribers export`), or any file with an `email` column.
    Plain,
    /// Mailchimp's audience export: `Email Address`, `First Name`,
    /// `Last Name`; the status in a `Status` column, else in the file's
    /// name (`subscribed_…`, `unsubscribed_…`, `cleaned_…`).
    Mailchimp,
    /// Substack's subscriber export: `email`, `active_subscription`, and
    /// `email_disabled`.
    Substack,
}

/// The columns of one file.
struct Columns {
    format: Format,
    email: usize,
    name: Vec<usize>,
    status: Option<usize>,
    key: Option<usize>,
    created_at: Option<usize>,
    topics: Option<usize>,
    /// Substack's `email_disabled`.
    disabled: Option<usize>,
}

impl Columns {
    fn find(headers: &csv::StringRecord, path: &Path) -> Result<Columns> {
        let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let addresses = headers
            .iter()
            .filter(|h| h.eq_ignore_ascii_case("email") || h.eq_ignore_ascii_case("Email Address"))
            .count();
        if addresses > 1 {
            bail!(
                "{}:1: {addresses} columns of addresses (`email` or `Email Address`); keep one",
                path.display()
            );
        }
        if let Some(email) = column("Email Address") {
            return Ok(Columns {
                format: Format::Mailchimp,
                email,
                name: ["First Name", "Last Name"]
                    .into_iter()
                    .filter_map(column)
                    .collect(),
                status: column("Status"),
                key: None,
                created_at: None,
                topics: None,
                disabled: None,
            });
        }
        let Some(email) = column("email") else {
            bail!(
                "{}:1: no `email` column (nor Mailchimp's `Email Address`); the first line must \
                 be a header such as `email,name`",
                path.display()
            );
        };
        let substack = column("active_subscription").is_some();
        Ok(Columns {
            format: if substack {
                Format::Substack
            } else {
                Format::Plain
            },
            email,
            name: column("name").into_iter().collect(),
            status: if substack { None } else { column("status") },
            key: column("key"),
            created_at: column("created_at"),
            topics: column("topics"),
            disabled: column("email_disabled"),
        })
    }
}

/// A status as a file writes it: ours, and Mailchimp's words
/// (`subscribed`, `cleaned`; `archived` and `transactional` are people who
/// did not ask for the list).
fn parse_status(text: &str) -> Option<Status> {
    match text.trim().to_ascii_lowercase().as_str() {
        "active" | "subscribed" => Some(Status::Active),
        "pending" => Some(Status::Pending),
        "unsubscribed" | "archived" | "transactional" | "nonsubscribed" => {
            Some(Status::Unsubscribed)
        }
        "bounced" | "cleaned" => Some(Status::Bounced),
        "complained" | "spam" | "abuse" => Some(Status::Complained),
        _ => None,
    }
}

/// Mailchimp names its export files by status.
fn status_from_file_name(path: &Path) -> Option<Status> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    [
        ("unsubscribed", Status::Unsubscribed),
        ("cleaned", Status::Bounced),
        ("subscribed", Status::Active),
    ]
    .into_iter()
    .find(|(prefix, _)| name.starts_with(prefix))
    .map(|(_, status)| status)
}

/// A `created_at` cell as the store keeps it (RFC 3339, UTC, milliseconds):
/// an RFC 3339 time, or a bare date (midnight UTC); never after `now`.
fn parse_created(text: &str, now: DateTime<Utc>) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => day.and_time(chrono::NaiveTime::MIN).and_utc(),
            Err(_) => {
                return Err(format!(
                    "created_at {text:?} is not a time (write it like 2024-01-31T09:00:00Z); the import's time is used"
                ));
            }
        },
    };
    if at > now {
        return Err(format!(
            "created_at {text:?} is in the future; the import's time is used"
        ));
    }
    Ok(Some(crate::store::timestamp(at)))
}

/// The delimiter of a CSV file, from its header line: `,` unless the line
/// has none and has `;` (spreadsheets in many locales) or a tab.
fn sniff_delimiter(file: &mut impl std::io::BufRead) -> std::io::Result<u8> {
    let head = file.fill_buf()?;
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    Ok(if line.contains(&b',') {
        b','
    } else if line.contains(&b';') {
        b';'
    } else if line.contains(&b'\t') {
        b'\t'
    } else {
        b','
    })
}

/// Imports a CSV file: ours (`subscribers export`: `email`, `name`,
/// `status`, `created_at`, `key`, `topics`; only `email` is required),
/// Mailchimp's or Substack's export. Valid rows are added in one
/// transaction, so an interrupted import adds none; invalid rows are
/// reported with their line numbers. A row whose topics the config does not
/// have refuses the whole file: skipping it would lose the reader, and
/// importing it with every topic would mail them what they did not choose. An address already there is never made active again; one the
/// file says left or bounced is marked so. Importing the same file again
/// changes nothing, and export → import into a new store gives the same
/// export.
pub fn import(
    store: &mut Store,
    config: &Config,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<ImportReport> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut file = std::io::BufReader::new(file);
    let delimiter = sniff_delimiter(&mut file)
        .with_context(|| format!("{}:1: cannot read the header line", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(file);
    let headers = reader
        .headers()
        .with_context(|| format!("{}:1: cannot read the header line", path.display()))?
        .clone();
    let columns = Columns::find(&headers, path)?;
    let file_status = match (columns.format, columns.status) {
        (Format::Mailchimp, None) => status_from_file_name(path),
        _ => None,
    };
    let mut report = ImportReport {
        format: match (columns.format, file_status) {
            (Format::Plain, _) => "a CSV file with an `email` column".into(),
            (Format::Mailchimp, Some(status)) => {
                format!("a Mailchimp export (every row {status}, from the file's name)")
            }
            (Format::Mailchimp, None) => "a Mailchimp export".into(),
            (Format::Substack, _) => "a Substack export".into(),
        },
        ..ImportReport::default()
    };

    let mut rows: Vec<ImportRow> = Vec::new();
    let mut lines: Vec<u64> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    // `path:line: …` for each row whose topics are not the config's.
    let mut bad_topics: Vec<String> = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                report
                    .problems
                    .push(format!("{}:{line}: {e}", path.display()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).map(restore_formula);
        let raw = cell(Some(columns.email)).unwrap_or("");
        if raw.is_empty() && record.iter().all(str::is_empty) {
            continue;
        }
        let email = match normalize_email(raw) {
            Ok(email) => email,
            Err(e) => {
                report.problems.push(format!(
                    "{}:{line}: {e}; fix or remove the row",
                    path.display()
                ));
                continue;
            }
        };
        let status = match cell(columns.status).filter(|s| !s.is_empty()) {
            Some(text) => match parse_status(text) {
                Some(status) => status,
                None => {
                    report.problems.push(format!(
                        "{}:{line}: unknown status {text:?}; use active, pending, unsubscribed, bounced or complained",
                        path.display()
                    ));
                    continue;
                }
            },
            None if cell(columns.disabled).is_some_and(|d| d.eq_ignore_ascii_case("true")) => {
                Status::Unsubscribed
            }
            None => file_status.unwrap_or(Status::Active),
        };
        if let Some(first) = seen.insert(email.clone(), line) {
            report.problems.push(format!(
                "{}:{line}: {email} is already on line {first}; skipped",
                path.display()
            ));
            continue;
        }
        let topics = match cell(columns.topics).filter(|t| !t.is_empty()) {
            Some(keys) => match choice(config, "topics", keys) {
                Ok(topics) => topics,
                Err(e) => {
                    bad_topics.push(format!("{}:{line}: {e:#}", path.display()));
                    continue;
                }
            },
            None => None,
        };
        let name: Vec<&str> = columns
            .name
            .iter()
            .filter_map(|&i| cell(Some(i)))
            .filter(|n| !n.is_empty())
            .collect();
        lines.push(line);
        rows.push(ImportRow {
            email,
            name: clean_name(&name.join(" ")),
            status,
            key: cell(columns.key).map(str::to_string),
            created_at: match cell(columns.created_at).map(|t| parse_created(t, now)) {
                Some(Ok(at)) => at,
                Some(Err(why)) => {
                    report
                        .warnings
                        .push(format!("{}:{line}: {why}", path.display()));
                    None
                }
                None => None,
            },
            topics,
        });
    }
    if let Some(first) = bad_topics.first() {
        let more = match bad_topics.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more row(s) with topics the site does not have)"),
        };
        bail!(
            "{first}{more}; nothing was imported: fix the file, or the [[topics]] of {}",
            config.path.display()
        );
    }
    for ((outcome, row), line) in store
        .import_subscribers(&rows, now)?
        .into_iter()
        .zip(&rows)
        .zip(&lines)
    {
        match outcome {
            Imported::New => report.added += 1,
            Imported::NewWithNewKey => {
                report.added += 1;
                report.warnings.push(format!(
                    "{}:{line}: {} was given a new key: the file's {:?} is {} here, so links mailed with it do not unsubscribe this reader",
                    path.display(),
                    row.email,
                    row.key.as_deref().unwrap_or(""),
                    if row.key.as_deref().is_some_and(crate::store::is_key) {
                        "another subscriber's"
                    } else {
                        "not a key (1 to 64 lowercase hex digits)"
                    }
                ));
            }
            Imported::Exists => report.existing += 1,
            Imported::Suppressed(_) => report.suppressed += 1,
            Imported::Forgotten => report.forgotten += 1,
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-25T09:00:00Z".parse().unwrap()
    }

    /// A site with two topics, `releases` and `events`.
    fn config() -> Config {
        Config::parse(
            "[site]\nbase_url = \"https://x.org\"\n\
             [[topics]]\nkey = \"releases\"\nlabel = \"Releases\"\ntags = [\"release\"]\n\
             [[topics]]\nkey = \"events\"\nlabel = \"Events\"\ntags = [\"event\"]\n",
            Path::new("config.toml"),
            Path::new("/site"),
        )
        .unwrap()
    }

    /// `subscribers add EMAIL --name NAME`, nothing else.
    fn add_plain(store: &mut Store, email: &str, name: &str) -> String {
        let new = NewSubscriber {
            email,
            name,
            ..NewSubscriber::default()
        };
        add(store, &config(), &new, now()).unwrap()
    }

    #[test]
    fn import_reports_bad_rows_by_line_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        let csv = dir.path().join("list.csv");
        std::fs::write(
            &csv,
            "email,name\nann@Example.org,Ann\nnot-an-address,Bob\n\n\"cat@x.org\",\"Cat, the third\"\nann@example.ORG,Ann again\n",
        )
        .unwrap();
        let report = import(&mut store, &config(), &csv, now()).unwrap();
        assert_eq!((report.added, report.existing), (2, 0));
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
        assert!(
            report.problems[0].contains("list.csv:3:")
                && report.problems[0].contains("not-an-address"),
            "{:?}",
            report.problems
        );
        assert!(
            report.problems[1].contains("list.csv:6:") && report.problems[1].contains("line 2"),
            "{:?}",
            report.problems
        );
        assert_eq!(
            store.subscriber("cat@x.org").unwrap().unwrap().name,
            "Cat, the third"
        );

        let again = import(&mut store, &config(), &csv, now()).unwrap();
        assert_eq!((again.added, again.existing), (0, 2));
        assert_eq!(store.count(Status::Active).unwrap(), 2);
    }

    #[test]
    fn names_stay_on_one_line() {
        assert_eq!(clean_name(" Eve\r\nBcc: x@y.org\t "), "Eve Bcc: x@y.org");
    }

    #[test]
    fn import_needs_an_email_column() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        let csv = dir.path().join("list.csv");
        std::fs::write(&csv, "address\na@x.org\n").unwrap();
        let err = import(&mut store, &config(), &csv, now())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("list.csv:1:") && err.contains("email"),
            "{err}"
        );
    }

    fn topics_of(store: &Store, email: &str) -> Option<String> {
        store.subscriber(email).unwrap().unwrap().topics
    }

    #[test]
    fn add_stores_the_topics_chosen_for_a_new_address_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        let config = config();
        let mut add_with = |email: &str, topics: &str| {
            let new = NewSubscriber {
                email,
                topics: Some(topics),
                ..NewSubscriber::default()
            };
            add(&mut store, &config, &new, now())
        };
        assert_eq!(
            add_with("a@x.org", "events, releases").unwrap(),
            "added a@x.org with every topic"
        );
        assert_eq!(
            add_with("b@x.org", "events").unwrap(),
            "added b@x.org with the topics events"
        );
        let said = add_with("b@x.org", "releases").unwrap();
        assert!(
            said.contains("already a subscriber")
                && said.contains("not changed")
                && said.contains("subscribers topics b@x.org --set"),
            "{said}"
        );
        let err = format!("{:#}", add_with("c@x.org", "releases,news").unwrap_err());
        assert!(
            err.contains("\"news\" is not a topic") && err.contains("releases, events"),
            "{err}"
        );
        assert_eq!(topics_of(&store, "a@x.org"), None);
        assert_eq!(topics_of(&store, "b@x.org").as_deref(), Some("events"));
        assert!(store.subscriber("c@x.org").unwrap().is_none());
    }

    #[test]
    fn topics_are_shown_set_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        let config = config();
        add_plain(&mut store, "ann@x.org", "");
        let shown = show_topics(&store, &config, "Ann@X.org", None).unwrap();
        assert_eq!(
            shown,
            "ann@x.org (active) never chose, so they get every topic, including ones added later:\n\
             yes\treleases\tReleases\nyes\tevents\tEvents\n"
        );
        let shown = show_topics(&store, &config, "ann@x.org", Some("events")).unwrap();
        assert!(
            shown.starts_with("ann@x.org now gets the topics events\n")
                && shown.contains("chose 1 of 2 topics")
                && shown.contains("no\treleases\t")
                && shown.contains("yes\tevents\t"),
            "{shown}"
        );
        assert_eq!(topics_of(&store, "ann@x.org").as_deref(), Some("events"));

        // A key the config no longer has is named, here and at `check`.
        let id = store.subscriber("ann@x.org").unwrap().unwrap().id;
        store.set_topics(id, Some("events,old")).unwrap();
        let shown = show_topics(&store, &config, "ann@x.org", None).unwrap();
        assert!(
            shown.contains("they also chose \"old\", which config.toml no longer has"),
            "{shown}"
        );
        let warnings = vanished_topics(&store, &config).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("\"old\" was chosen by 1 subscriber(s)"),
            "{warnings:?}"
        );

        show_topics(&store, &config, "ann@x.org", Some("all")).unwrap();
        assert_eq!(topics_of(&store, "ann@x.org"), None);
        assert!(vanished_topics(&store, &config).unwrap().is_empty());
        let err = show_topics(&store, &config, "bob@x.org", None).unwrap_err();
        assert!(err.to_string().contains("bob@x.org is not a subscriber"));
    }

    #[test]
    fn import_reads_topics_and_refuses_the_file_for_one_it_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        let report = import_text(
            &mut store,
            "list.csv",
            "email,topics\na@x.org,\"events,releases\"\nb@x.org,events\nc@x.org,\n",
        );
        assert_eq!(report.added, 3, "{report:?}");
        assert_eq!(topics_of(&store, "a@x.org"), None);
        assert_eq!(topics_of(&store, "b@x.org").as_deref(), Some("events"));
        assert_eq!(topics_of(&store, "c@x.org"), None);

        let path = dir.path().join("bad.csv");
        std::fs::write(
            &path,
            "email,topics\nd@x.org,events\ne@x.org,news\nf@x.org,old\n",
        )
        .unwrap();
        let err = import(&mut store, &config(), &path, now()).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("bad.csv:3: topics \"news\"")
                && err.contains("1 more row")
                && err.contains("nothing was imported"),
            "{err}"
        );
        assert!(store.subscriber("d@x.org").unwrap().is_none());
    }

    #[test]
    fn remove_keeps_the_row_and_export_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        assert_eq!(add_plain(&mut store, "A@X.org", " Ann "), "added A@x.org");
        assert!(add_plain(&mut store, "A@x.ORG", "").contains("already"));
        assert!(remove(&mut store, "nobody@x.org", false, now()).is_err());
        remove(&mut store, "A@x.org", false, now()).unwrap();
        let mut out = Vec::new();
        export(&store, &mut out).unwrap();
        let key = store.subscriber("a@x.org").unwrap().unwrap().key;
        assert!(crate::store::is_key(&key) && key.len() == 20, "{key}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "email,name,status,created_at,key,topics\nA@x.org,Ann,unsubscribed,2026-11-25T09:00:00.000Z,{key},\n"
            )
        );
    }

    #[test]
    fn a_suppressed_address_stays_so_until_reactivated() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        for (email, status) in [
            ("gone@x.org", Status::Unsubscribed),
            ("dead@x.org", Status::Bounced),
            ("spam@x.org", Status::Complained),
        ] {
            store.add_subscriber(email, "", status, now()).unwrap();
            let said = add_plain(&mut store, email, "");
            assert!(
                said.contains(&format!("is {status} and stays so"))
                    && said.contains(&format!("subscribers reactivate {email}")),
                "{said}"
            );
            assert_eq!(status_of(&store, email), status);
        }
        // An import that says active changes none of them; one that says
        // complained suppresses an active address.
        store
            .add_subscriber("ok@x.org", "", Status::Active, now())
            .unwrap();
        import_text(
            &mut store,
            "list.csv",
            "email,status\ngone@x.org,active\ndead@x.org,active\nspam@x.org,active\nok@x.org,complained\n",
        );
        assert_eq!(status_of(&store, "spam@x.org"), Status::Complained);
        assert_eq!(status_of(&store, "dead@x.org"), Status::Bounced);
        assert_eq!(status_of(&store, "ok@x.org"), Status::Complained);
        // A one-click unsubscribe leaves a complaint as it is.
        let spam = store.subscriber("spam@x.org").unwrap().unwrap();
        store
            .change_status(spam.id, StatusChange::Unsubscribe, now())
            .unwrap();
        assert_eq!(status_of(&store, "spam@x.org"), Status::Complained);

        assert_eq!(
            reactivate(&store, "Spam@x.org", now()).unwrap(),
            "spam@x.org is active again (it was complained)"
        );
        assert_eq!(status_of(&store, "spam@x.org"), Status::Active);
        assert_eq!(
            reactivate(&store, "spam@x.org", now()).unwrap(),
            "spam@x.org is already active"
        );
        assert!(reactivate(&store, "nobody@x.org", now()).is_err());
        let mut out = Vec::new();
        list(&store, Some(Status::Complained), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap().lines().count(),
            1,
            "ok@x.org only"
        );
    }

    fn import_text(store: &mut Store, name: &str, text: &str) -> ImportReport {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        import(store, &config(), &path, now()).unwrap()
    }

    fn status_of(store: &Store, email: &str) -> Status {
        store.subscriber(email).unwrap().unwrap().status
    }

    #[test]
    fn import_honours_status_but_never_makes_anyone_active_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        for (email, status) in [
            ("gone@x.org", Status::Unsubscribed),
            ("dead@x.org", Status::Bounced),
            ("here@x.org", Status::Active),
        ] {
            store.add_subscriber(email, "", status, now()).unwrap();
        }
        let report = import_text(
            &mut store,
            "list.csv",
            "email,status\ngone@x.org,active\ndead@x.org,Active\nhere@x.org,unsubscribed\n\
             new@x.org,bounced\nodd@x.org,sleeping\n",
        );
        assert_eq!(
            (report.added, report.existing, report.suppressed),
            (1, 2, 1),
            "{report:?}"
        );
        assert!(
            report.problems[0].contains(":6: unknown status \"sleeping\""),
            "{report:?}"
        );
        assert_eq!(status_of(&store, "gone@x.org"), Status::Unsubscribed);
        assert_eq!(status_of(&store, "dead@x.org"), Status::Bounced);
        assert_eq!(status_of(&store, "here@x.org"), Status::Unsubscribed);
        assert_eq!(status_of(&store, "new@x.org"), Status::Bounced);
    }

    #[test]
    fn export_then_import_into_a_new_store_is_the_same_list_with_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.db")).unwrap();
        for (email, name, status) in [
            ("a@x.org", "Ann", Status::Active),
            ("b@x.org", "", Status::Pending),
            ("c@x.org", "Cy", Status::Unsubscribed),
            ("d@x.org", "Di, Jr", Status::Bounced),
        ] {
            store.add_subscriber(email, name, status, now()).unwrap();
        }
        let b = store.subscriber("b@x.org").unwrap().unwrap();
        store.set_topics(b.id, Some("events")).unwrap();
        let mut first = Vec::new();
        export(&store, &mut first).unwrap();
        let first = String::from_utf8(first).unwrap();

        let mut other = Store::open(&dir.path().join("other.db")).unwrap();
        // Someone else holds row 1 there, as in any store with a history.
        other
            .add_subscriber("z@x.org", "", Status::Active, now())
            .unwrap();
        let report = import_text(&mut other, "export.csv", &first);
        assert_eq!(report.added, 4, "{report:?}");
        let mut second = Vec::new();
        export(&other, &mut second).unwrap();
        let second = String::from_utf8(second).unwrap();
        assert_eq!(
            second.lines().skip(2).collect::<Vec<_>>(),
            first.lines().skip(1).collect::<Vec<_>>()
        );
        // The key, not the row id, names Ann in the new store.
        // A key taken or malformed: imported under a new one, and said so.
        let report = import_text(
            &mut other,
            "more.csv",
            &format!(
                "email,key\ne@x.org,{}\nf@x.org,NOT-A-KEY\n",
                store.subscriber("a@x.org").unwrap().unwrap().key
            ),
        );
        assert_eq!(report.added, 2);
        assert_eq!(report.warnings.len(), 2, "{report:?}");
        assert!(
            report.warnings[0].contains("more.csv:2: e@x.org")
                && report.warnings[0].contains("another subscriber's")
        );
        assert!(
            report.warnings[1].contains("more.csv:3: f@x.org")
                && report.warnings[1].contains("not a key")
        );
        let ann = other.subscriber("a@x.org").unwrap().unwrap();
        let old_ann = store.subscriber("a@x.org").unwrap().unwrap();
        assert_eq!(ann.key, old_ann.key);
        assert_ne!(ann.id, old_ann.id);
        assert_eq!(
            other
                .subscriber_by_key(&old_ann.key)
                .unwrap()
                .unwrap()
                .email,
            "a@x.org"
        );
    }

    #[test]
    fn mailchimp_and_substack_exports_are_read_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        let mailchimp = "\"Email Address\",\"First Name\",\"Last Name\",MEMBER_RATING,OPTIN_TIME\n\
                         ann@x.org,Ann,Lee,2,\"2024-01-01 10:00:00\"\nbob@x.org,,,1,\n";
        let report = import_text(&mut store, "subscribed_members_export_1a2b.csv", mailchimp);
        assert!(
            report.format.contains("Mailchimp") && report.format.contains("active"),
            "{report:?}"
        );
        assert_eq!(report.added, 2);
        assert_eq!(
            store.subscriber("ann@x.org").unwrap().unwrap().name,
            "Ann Lee"
        );
        let report = import_text(
            &mut store,
            "cleaned_members_export_1a2b.csv",
            "Email Address\ncat@x.org\n",
        );
        assert_eq!(report.added, 1);
        assert_eq!(status_of(&store, "cat@x.org"), Status::Bounced);
        let report = import_text(
            &mut store,
            "unsubscribed_members_export_1a2b.csv",
            "Email Address\nann@x.org\n",
        );
        assert_eq!(report.suppressed, 1);
        assert_eq!(status_of(&store, "ann@x.org"), Status::Unsubscribed);
        let report = import_text(
            &mut store,
            "members.csv",
            "Email Address,Status\ndan@x.org,pending\n",
        );
        assert_eq!(report.format, "a Mailchimp export");
        assert_eq!(status_of(&store, "dan@x.org"), Status::Pending);

        // Substack: active_subscription is the paid plan, not consent;
        // email_disabled is.
        let substack = "email,active_subscription,expiry,plan,email_disabled,created_at\n\
                        eve@x.org,false,,,false,2023-05-06T07:08:09.000Z\n\
                        fay@x.org,true,2027-01-01,yearly,true,2023-05-06T07:08:09.000Z\n";
        let report = import_text(&mut store, "email_list.csv", substack);
        assert_eq!(report.format, "a Substack export");
        assert_eq!(report.added, 2);
        assert_eq!(status_of(&store, "eve@x.org"), Status::Active);
        assert_eq!(status_of(&store, "fay@x.org"), Status::Unsubscribed);
        assert_eq!(
            store.subscriber("eve@x.org").unwrap().unwrap().created_at,
            "2023-05-06T07:08:09.000Z"
        );
    }

    #[test]
    fn semicolons_dates_and_doubled_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        let report = import_text(
            &mut store,
            "list.csv",
            "email;name;created_at\nann@x.org;Ann, Lee;2024-01-02\nbob@x.org;Bob;soon\ncy@x.org;Cy;2999-01-01T00:00:00Z\n",
        );
        assert_eq!(report.added, 3, "{report:?}");
        assert_eq!(
            store.subscriber("ann@x.org").unwrap().unwrap().name,
            "Ann, Lee"
        );
        assert_eq!(
            store.subscriber("ann@x.org").unwrap().unwrap().created_at,
            "2024-01-02T00:00:00.000Z"
        );
        assert_eq!(report.warnings.len(), 2, "{report:?}");
        assert!(
            report.warnings[0].contains("list.csv:3:") && report.warnings[0].contains("not a time")
        );
        assert!(
            report.warnings[1].contains("list.csv:4:") && report.warnings[1].contains("future")
        );

        let path = dir.path().join("two.csv");
        std::fs::write(&path, "email,Email Address\na@x.org,b@x.org\n").unwrap();
        let err = import(&mut store, &config(), &path, now())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("two.csv:1:") && err.contains("keep one"),
            "{err}"
        );
    }

    #[test]
    fn forget_erases_the_row_and_keeps_the_address_out_of_imports() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        add_plain(&mut store, "ann@x.org", "Ann");
        let out = remove(&mut store, "Ann@X.org", true, now()).unwrap();
        assert!(out.contains("erased"), "{out}");
        assert!(store.subscriber("ann@x.org").unwrap().is_none());
        assert!(store.is_forgotten("ann@x.org").unwrap());
        assert!(
            remove(&mut store, "ann@x.org", true, now())
                .unwrap()
                .contains("already erased")
        );
        let report = import_text(&mut store, "list.csv", "email\nANN@x.org\nbob@x.org\n");
        assert_eq!((report.added, report.forgotten), (1, 1), "{report:?}");
        assert!(store.subscriber("ann@x.org").unwrap().is_none());

        // Added back by hand: an import then treats the row as any other.
        add_plain(&mut store, "Ann@x.org", "");
        let report = import_text(
            &mut store,
            "cleaned_members_export_1.csv",
            "Email Address\nann@x.org\n",
        );
        assert_eq!((report.suppressed, report.forgotten), (1, 0), "{report:?}");
        assert_eq!(status_of(&store, "ann@x.org"), Status::Bounced);
    }

    #[test]
    fn export_defuses_formulas_and_import_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.db")).unwrap();
        for (email, name) in [
            (
                "=ann@example.org",
                "=HYPERLINK(\"https://evil.example\",\"x\")",
            ),
            ("bob@example.org", "+1 Bob"),
            ("cy@example.org", "-Cy @home"),
            ("di@example.org", "'Di"),
            ("ed@example.org", "'=Ed"),
        ] {
            store
                .add_subscriber(email, name, Status::Active, now())
                .unwrap();
        }
        let mut out = Vec::new();
        export(&store, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in text.lines().skip(1) {
            for cell in line.split(',') {
                let cell = cell.trim_start_matches('"');
                assert!(!cell.starts_with(FORMULA_STARTS), "{cell:?} in {line:?}");
            }
        }
        assert!(text.contains("'=ann@example.org"), "{text}");
        assert!(
            text.contains("'Di"),
            "a leading ' that was typed stays: {text}"
        );

        let path = dir.path().join("export.csv");
        std::fs::write(&path, &text).unwrap();
        let mut other = Store::open(&dir.path().join("other.db")).unwrap();
        let report = import(&mut other, &config(), &path, now()).unwrap();
        assert_eq!(report.added, 5, "{report:?}");
        let mut again = Vec::new();
        export(&other, &mut again).unwrap();
        let names = |t: &str| -> Vec<String> {
            t.lines()
                .skip(1)
                .map(|l| l.rsplitn(3, ',').nth(2).unwrap().to_string())
                .collect()
        };
        assert_eq!(names(&String::from_utf8(again).unwrap()), names(&text));
        let ann = other.subscriber("=ann@example.org").unwrap().unwrap();
        assert_eq!(ann.name, "=HYPERLINK(\"https://evil.example\",\"x\")");
        let ed = other.subscriber("ed@example.org").unwrap().unwrap();
        assert_eq!(ed.name, "'=Ed");
    }
}

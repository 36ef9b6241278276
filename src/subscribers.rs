//! `newsletter subscribers`: add, remove, list, import and export addresses.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use crate::store::{Added, Status, StatusChange, Store, normalize_email};

/// A display name on one line: control characters (a line break could
/// otherwise become a mail header) turn into spaces, runs of space into one.
pub fn clean_name(name: &str) -> String {
    crate::text::one_line(name)
}

/// Adds an active subscriber; an address already there is reported, not changed.
pub fn add(store: &Store, email: &str, name: &str, now: DateTime<Utc>) -> Result<String> {
    let email = normalize_email(email).map_err(anyhow::Error::msg)?;
    Ok(
        match store.add_subscriber(&email, &clean_name(name), Status::Active, now)? {
            Added::New(_) => format!("added {email}"),
            Added::Exists(s) => format!("{email} is already a subscriber ({})", s.status),
        },
    )
}

/// Marks a subscriber unsubscribed; the row stays so the address is never mailed again.
pub fn remove(store: &Store, email: &str, now: DateTime<Utc>) -> Result<String> {
    let email = normalize_email(email).map_err(anyhow::Error::msg)?;
    let Some(subscriber) = store.subscriber(&email)? else {
        bail!("{email} is not a subscriber (see `newsletter subscribers list`)");
    };
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

/// Writes every subscriber as CSV with a header line.
pub fn export(store: &Store, out: &mut dyn Write) -> Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["email", "name", "status", "created_at"])?;
    let mut result = Ok(());
    store.for_each_subscriber(None, |s| {
        if result.is_ok() {
            result = csv.write_record([
                &*defuse_formula(&s.email),
                &*defuse_formula(&s.name),
                s.status.as_str(),
                &s.created_at,
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
    pub added: usize,
    pub existing: usize,
    /// `path:line: what is wrong` for each row not imported.
    pub problems: Vec<String>,
}

/// Imports a CSV file with an `email` column (and optionally `name`). Valid
/// rows are added in one transaction, so an interrupted import adds none;
/// invalid rows are reported with their line numbers. Importing the same
/// file again changes nothing.
pub fn import(store: &mut Store, path: &Path, now: DateTime<Utc>) -> Result<ImportReport> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(std::io::BufReader::new(file));
    let headers = reader
        .headers()
        .with_context(|| format!("{}:1: cannot read the header line", path.display()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(email_column) = column("email") else {
        bail!(
            "{}:1: no `email` column; the first line must be a header such as `email,name`",
            path.display()
        );
    };
    let name_column = column("name");

    let mut report = ImportReport::default();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashMap::new();
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
        let raw = restore_formula(record.get(email_column).unwrap_or(""));
        if raw.is_empty() && record.iter().all(str::is_empty) {
            continue;
        }
        match normalize_email(raw) {
            Ok(email) => {
                if let Some(first) = seen.insert(email.clone(), line) {
                    report.problems.push(format!(
                        "{}:{line}: {email} is already on line {first}; skipped",
                        path.display()
                    ));
                    continue;
                }
                let name = name_column.and_then(|i| record.get(i)).unwrap_or("");
                let name = clean_name(restore_formula(name));
                rows.push((email, name));
            }
            Err(e) => report.problems.push(format!(
                "{}:{line}: {e}; fix or remove the row",
                path.display()
            )),
        }
    }
    let added = store.add_subscribers(
        rows.iter().map(|(e, n)| (e.as_str(), n.as_str())),
        Status::Active,
        now,
    )?;
    for outcome in added {
        match outcome {
            Added::New(_) => report.added += 1,
            Added::Exists(_) => report.existing += 1,
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
        let report = import(&mut store, &csv, now()).unwrap();
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

        let again = import(&mut store, &csv, now()).unwrap();
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
        let err = import(&mut store, &csv, now()).unwrap_err().to_string();
        assert!(
            err.contains("list.csv:1:") && err.contains("email"),
            "{err}"
        );
    }

    #[test]
    fn remove_keeps_the_row_and_export_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.db")).unwrap();
        assert_eq!(
            add(&store, "A@X.org", " Ann ", now()).unwrap(),
            "added A@x.org"
        );
        assert!(
            add(&store, "A@x.ORG", "", now())
                .unwrap()
                .contains("already")
        );
        assert!(remove(&store, "nobody@x.org", now()).is_err());
        remove(&store, "A@x.org", now()).unwrap();
        let mut out = Vec::new();
        export(&store, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "email,name,status,created_at\nA@x.org,Ann,unsubscribed,2026-11-25T09:00:00.000Z\n"
        );
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
        let report = import(&mut other, &path, now()).unwrap();
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

use std::process::ExitCode;

use clap::Parser;
use newsletter::cli::{self, Cli, Exit};
use newsletter::content::Problems;

/// The one place that prints errors and maps outcomes to exit codes: 0 on
/// success, 1 on any error or reported problem, 2 for a usage error (clap
/// exits with it while parsing).
fn main() -> ExitCode {
    match cli::run(Cli::parse()) {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::Problems) => ExitCode::FAILURE,
        Err(error) => {
            // Problems in posts, each as `path:line: message`, then the error.
            if let Some(problems) = error.chain().find_map(|e| e.downcast_ref::<Problems>()) {
                for problem in &problems.0 {
                    eprintln!("{problem}");
                }
            }
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: a cause whose
/// text is already shown (many errors include their source's message), or
/// that only repeats the one before it with a prefix (rusqlite's
/// "Error code 5: database is locked" under "database is locked"), is left out.
fn describe(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    let mut previous = line.clone();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        let restated = !previous.is_empty() && text.ends_with(&previous);
        if !line.contains(&text) && !restated {
            line.push_str(": ");
            line.push_str(&text);
        }
        previous = text;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn each_cause_is_said_once() {
        let sqlite = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(5),
            Some("database is locked".into()),
        );
        let error = anyhow::Error::new(sqlite)
            .context("newsletter.db: database is locked")
            .context("cannot record deliveries in the ledger");
        assert_eq!(
            describe(&error),
            "cannot record deliveries in the ledger: newsletter.db: database is locked"
        );
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(io).context("cannot read config.toml");
        assert_eq!(describe(&error), "cannot read config.toml: no such file");
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

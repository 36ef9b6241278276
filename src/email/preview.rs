//! `newsletter preview`: the next digest as files, to look at before it
//! goes out.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::compose::{Composer, Stamp, reader_links};
use super::digest::{Trial, digest_to_try, letter_to_try, personalize};
use crate::atomic::stage_file;
use crate::store::Store;

/// The sample reader a preview is addressed to.
const READER: (&str, &str) = ("reader@example.org", "Reader");
/// The sample reader's key: no subscriber has it, so the preview's links change nothing.
const SAMPLE_KEY: &str = "preview";

/// What `preview` wrote, and which digest it shows.
#[derive(Debug)]
pub struct Previewed {
    pub files: Vec<PathBuf>,
    pub digest_id: i64,
    pub trial: Trial,
}

/// The next digest (or the unfinished one; with no new post, the latest
/// one rendered again) as `digest.html`, `digest.txt` and `digest.eml` in
/// `output`, addressed to a sample reader; `None` when there is nothing
/// to show. Records nothing, and creates no store where there is none yet.
/// With `letter`, the post at that path as the letter it would be, as
/// `letter.html`, `letter.txt` and `letter.eml`.
pub fn preview(
    config: &crate::config::Config,
    output: &Path,
    letter: Option<&Path>,
    now: DateTime<Utc>,
) -> Result<Option<Previewed>> {
    let store = Store::open_existing(&config.store.path)?;
    // The sample reader's links are signed with the real secret when there
    // is one (a NEWSLETTER_SECRET too short is refused here as by `send`).
    let secret = super::send::known_secret(store.as_ref(), config)?;
    let (digest, digest_id, trial, stem) = match letter {
        Some(path) => {
            let (letter, id) = letter_to_try(config, store.as_ref(), path)?;
            (letter, id, Trial::Next, "letter")
        }
        None => match digest_to_try(config, store.as_ref(), now)? {
            Some((digest, id, trial)) => (digest, id, trial, "digest"),
            None => return Ok(None),
        },
    };
    let (email, name) = READER;
    let (unsubscribe_url, preferences_url) = reader_links(config, &secret, SAMPLE_KEY);
    let personal = personalize(
        &digest,
        None,
        email,
        name,
        &unsubscribe_url,
        &preferences_url,
    );
    let message = Composer::new(config, &digest, digest_id, &secret, Stamp::Trial)?
        .message(0, SAMPLE_KEY, email, name, None, now)?;
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let mut written = Vec::new();
    for (extension, bytes) in [
        ("html", personal.html.into_bytes()),
        ("txt", personal.text.into_bytes()),
        ("eml", message.formatted().to_vec()),
    ] {
        let path = output.join(format!("{stem}.{extension}"));
        stage_file(&path, |w| w.write_all(&bytes))?
            .map(|staged| staged.commit())
            .transpose()?;
        written.push(path);
    }
    Ok(Some(Previewed {
        files: written,
        digest_id,
        trial,
    }))
}

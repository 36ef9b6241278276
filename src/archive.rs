//! The web archive of every mailing: each digest and letter as the page it
//! was mailed as (naming nobody), an index of them, newest first, and an
//! Atom feed of them; written into the output folder from the store by
//! `build`, and by `send` right after it makes a mailing, so the "View in
//! browser" link of its first message already works.
//!
//! The pages come from the store (each mailing keeps its archive page,
//! rendered with the mail), so they need neither the posts nor the
//! templates as they were; the posts only give titles to records made
//! before the store kept them.

use std::collections::HashMap;
use std::path::Path;

use atom_syndication::{Feed, Generator, Link, Person, Text};
use chrono::{DateTime, FixedOffset};
use minijinja::context;
use minijinja::value::Value;

use rayon::prelude::*;

use crate::atomic::{Staged, WriteError, stage_file};
use crate::config::Config;
use crate::content::Post;
use crate::email::merge::{clean, merge};
use crate::html::strip_xml_illegal;
use crate::store::{Archived, Kind, Store, StoreError};
use crate::{links, templates};

/// Post titles by permalink, for records that do not keep their title.
pub type Titles = HashMap<String, String>;

/// The titles of `posts`, by permalink.
pub fn titles(posts: &[Post]) -> Titles {
    posts
        .iter()
        .map(|p| (p.permalink.clone(), p.title.clone()))
        .collect()
}

/// The index page's template (in `digest.templates`, else built in).
pub const INDEX_TEMPLATE: &str = "archive.html";

/// Why the archive could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{location}: {message}; fix the template (its variables are listed in README.md)")]
    Template { location: String, message: String },
    #[error(
        "{path}: another process has held this lock for {waited} s (another build or send writing the archive)"
    )]
    Busy { path: String, waited: u64 },
    #[error("{path}: the stored date {date:?} of mailing {id} is not a time; the store is damaged")]
    Date { path: String, id: i64, date: String },
}

/// The archive's files, staged: renamed into place by their `commit`.
pub struct Staging {
    /// Files whose bytes change (or are new): the index and the feed.
    pub staged: Vec<Staged>,
    /// Mailing pages already written (new, or changed), relative to the
    /// output folder.
    pub written: Vec<String>,
    /// Every file of the archive, relative to the output folder.
    pub paths: Vec<String>,
}

/// Stages every file of the archive for the mailings in `store`: one page
/// per mailing, the index, and (once there is a mailing) the feed. `titles`
/// name the posts of records that do not keep their title.
pub fn stage(
    config: &Config,
    output_dir: &Path,
    store: &Store,
    titles: &Titles,
) -> Result<Staging, ArchiveError> {
    let mailings = store.archived()?;
    let folder = &config.archive.path;
    let mut paths = Vec::new();
    let mut written = Vec::new();
    let subscribe = links::subscribe_url(config);
    let lengths = store.archive_page_lengths()?;
    // The pages to write: read from the store here (one connection), then
    // written side by side.
    let mut pages = Vec::new();
    for mailing in &mailings {
        let relative = format!("{folder}/{}/index.html", mailing.id);
        let path = output_dir.join(&relative);
        // A mailing's page never changes once made: one already there at
        // its length is not read again (a build stays fast with years of
        // digests).
        let on_disk = std::fs::symlink_metadata(&path)
            .ok()
            .filter(|m| m.file_type().is_file())
            .map(|m| m.len());
        if on_disk.is_some() && on_disk == lengths.get(&mailing.id).copied().flatten() {
            paths.push(relative);
            continue;
        }
        let Some((page, html)) = store.archive_page(mailing.id)? else {
            continue;
        };
        // Mailings made before the store kept pages: the mail, naming nobody.
        let page = page.unwrap_or_else(|| merge(&html, ["", "", &subscribe, "", "", ""]));
        paths.push(relative.clone());
        pages.push((relative, path, page));
    }
    // Each page stands alone: put in place at once.
    let results: Vec<Result<Option<String>, WriteError>> = pages
        .into_par_iter()
        .map(
            |(relative, path, page)| match stage_file(&path, |w| w.write_all(page.as_bytes()))? {
                Some(file) => file.commit().map(|()| Some(relative)),
                None => Ok(None),
            },
        )
        .collect();
    for result in results {
        written.extend(result?);
    }
    let mut staging = Staging {
        staged: Vec::new(),
        written,
        paths,
    };
    let mut add = |relative: String, bytes: &[u8]| -> Result<(), ArchiveError> {
        let path = output_dir.join(&relative);
        if let Some(file) = stage_file(&path, |w| w.write_all(bytes))? {
            staging.staged.push(file);
        }
        staging.paths.push(relative);
        Ok(())
    };
    let listed = list(config, store, &mailings, titles)?;
    add(
        format!("{folder}/index.html"),
        index(config, &listed)?.as_bytes(),
    )?;
    if !listed.is_empty() {
        let mut bytes = Vec::new();
        feed(config, &listed)
            .write_to(&mut bytes)
            .map_err(|e| WriteError {
                path: output_dir.join(folder).join("atom.xml"),
                source: std::io::Error::other(e),
            })?;
        bytes.push(b'\n');
        add(format!("{folder}/atom.xml"), &bytes)?;
    }
    Ok(staging)
}

/// What [`write`] did: the files it changed and every file of the
/// archive, relative to the output folder.
pub struct Written {
    pub changed: Vec<String>,
    pub paths: Vec<String>,
}

/// The lock that orders the writers of one archive (a `build` and a
/// `send` of two processes): each reads the store and puts its files in
/// place while holding it, so the last to write read the store last, and
/// an index never goes back to an older list. Hidden in the output folder,
/// so it is not served.
const LOCK: &str = ".newsletter.archive.lock";

/// How long a writer waits for another to finish the archive.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The archive lock, held: made private (0600, so nobody else can hold
/// it), waited for at most [`LOCK_WAIT`]; a writer that cannot have it
/// gives up with an error (`send` delivers anyway, `build` keeps the
/// archive as it is), never waits for ever.
fn lock(output_dir: &Path) -> Result<std::fs::File, ArchiveError> {
    let path = output_dir.join(LOCK);
    let error = |source| WriteError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(output_dir).map_err(&error)?;
    let file = crate::atomic::private_options()
        .open(&path)
        .map_err(&error)?;
    // One made by an earlier version, readable by all, is made private too.
    crate::atomic::make_private(&path).map_err(&error)?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ArchiveError::Busy {
                    path: path.display().to_string(),
                    waited: LOCK_WAIT.as_secs(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(error(e).into()),
        }
    }
}

/// Writes the archive (see [`stage`]) under the archive lock.
pub fn write(
    config: &Config,
    output_dir: &Path,
    store: &Store,
    titles: &Titles,
) -> Result<Written, ArchiveError> {
    let _lock = lock(output_dir)?;
    let staging = stage(config, output_dir, store, titles)?;
    let mut changed = staging.written;
    for file in staging.staged {
        changed.push(file.relative_to(output_dir));
        file.commit()?;
    }
    Ok(Written {
        changed,
        paths: staging.paths,
    })
}

/// Renders the index with a sample mailing, so `check` reports a broken
/// `archive.html` before a build does.
pub fn check_template(config: &Config) -> Result<(), crate::email::digest::DigestError> {
    let sample = Listed {
        id: 1,
        kind: Kind::Digest,
        subject: "A sample digest".into(),
        date: "2026-01-01T00:00:00+00:00".parse().expect("a date"),
        posts: vec![("A sample post".into(), config.site.url_for("/sample/"))],
    };
    index(config, &[sample]).map(|_| ()).map_err(|e| match e {
        ArchiveError::Template { location, message } => {
            crate::email::digest::DigestError::Template { location, message }
        }
        other => crate::email::digest::DigestError::Template {
            location: INDEX_TEMPLATE.into(),
            message: other.to_string(),
        },
    })
}

/// A mailing as the index and the feed show it.
struct Listed {
    id: i64,
    kind: Kind,
    subject: String,
    date: DateTime<FixedOffset>,
    /// (title, absolute URL)
    posts: Vec<(String, String)>,
}

fn list(
    config: &Config,
    store: &Store,
    mailings: &[Archived],
    titles: &Titles,
) -> Result<Vec<Listed>, ArchiveError> {
    let site = &config.site;
    mailings
        .iter()
        .map(|m| {
            let date =
                DateTime::parse_from_rfc3339(&m.created_at).map_err(|_| ArchiveError::Date {
                    path: store.path().display().to_string(),
                    id: m.id,
                    date: m.created_at.clone(),
                })?;
            let carried = m
                .posts
                .iter()
                .map(|(title, permalink, email_only)| {
                    let title = title
                        .clone()
                        .or_else(|| titles.get(permalink).cloned())
                        .unwrap_or_else(|| permalink.clone());
                    // An email-only post has no page but its mailing's.
                    let url = if *email_only {
                        links::archive_page_url(config, m.id)
                    } else {
                        site.url_for(permalink)
                    };
                    (clean(&strip_xml_illegal(&title)), url)
                })
                .collect();
            Ok(Listed {
                id: m.id,
                kind: m.kind,
                // A subject that prints a subscriber's value names nobody here.
                subject: merge(&strip_xml_illegal(&m.subject), ["", "", "", "", "", ""]),
                date,
                posts: carried,
            })
        })
        .collect()
}

fn index(config: &Config, mailings: &[Listed]) -> Result<String, ArchiveError> {
    let values: Vec<Value> = mailings
        .iter()
        .map(|m| {
            let posts: Vec<Value> = m
                .posts
                .iter()
                .map(|(title, url)| context! { title => title, url => url })
                .collect();
            context! {
                id => m.id,
                url => links::archive_page_url(config, m.id),
                kind => m.kind.as_str(),
                subject => &m.subject,
                date => m.date.format("%-d %B %Y").to_string(),
                date_iso => m.date.format("%Y-%m-%d").to_string(),
                posts => posts,
            }
        })
        .collect();
    let env = templates::environment(config);
    env.get_template(INDEX_TEMPLATE)
        .and_then(|t| {
            t.render(context! {
                site => templates::site_context(config, clean),
                mailings => values,
                feed_url => links::archive_feed_url(config),
                subscribe_url => links::subscribe_url(config),
            })
        })
        .map_err(|e| ArchiveError::Template {
            location: templates::locate(&config.digest.templates, INDEX_TEMPLATE, Some(&e)),
            message: templates::describe(&e),
        })
}

/// The Atom feed of the mailings (newest first): each entry the mailing's
/// subject, linking its page, with the posts it carried. Ids are `tag:`
/// URIs of the host, the day and the mailing's number, so they survive a
/// move from http to https and a new `archive.path`.
fn feed(config: &Config, mailings: &[Listed]) -> Feed {
    let site = &config.site;
    let feed_url = links::archive_feed_url(config);
    let person = Person {
        name: site.author.clone(),
        ..Person::default()
    };
    let link = |rel: &str, href: String, mime: &str| Link {
        href,
        rel: rel.into(),
        mime_type: Some(mime.into()),
        ..Link::default()
    };
    let entries = mailings
        .iter()
        .map(|m| {
            let list: String = m
                .posts
                .iter()
                .map(|(title, url)| {
                    format!(
                        "<li><a href=\"{}\">{}</a></li>",
                        crate::html::escape_text(url),
                        crate::html::escape_text(title)
                    )
                })
                .collect();
            let what = match m.kind {
                Kind::Digest => "A digest of",
                Kind::Letter => "A letter:",
            };
            atom_syndication::Entry {
                // The folder is left out: a new archive.path keeps the ids.
                id: format!(
                    "tag:{},{}:mailings/{}",
                    site.host(),
                    m.date.format("%Y-%m-%d"),
                    m.id
                ),
                title: Text::plain(m.subject.clone()),
                updated: m.date,
                published: Some(m.date),
                links: vec![link(
                    "alternate",
                    links::archive_page_url(config, m.id),
                    "text/html",
                )],
                summary: Some(Text::html(format!("<p>{what}</p><ul>{list}</ul>"))),
                ..atom_syndication::Entry::default()
            }
        })
        .collect();
    Feed {
        id: feed_url.clone(),
        title: Text::plain(format!("{}: every issue", clean(&site.title))),
        updated: mailings.iter().map(|m| m.date).max().unwrap_or_default(),
        authors: vec![person],
        links: vec![
            link("self", feed_url, "application/atom+xml"),
            link("alternate", links::archive_url(config), "text/html"),
        ],
        generator: Some(Generator {
            value: crate::feed::GENERATOR.into(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
        lang: Some(site.language.clone()),
        entries,
        ..Feed::default()
    }
}

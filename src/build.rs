//! `newsletter build`: posts → feeds in the output folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rayon::prelude::*;

use crate::atomic::{Staged, WriteError, remove_stale_temp_files, stage_file};
use crate::config::Config;
use crate::content::{self, Mailing, Post, PostStatus, Problem, Problems};
use crate::feed::{self, Entry, FeedInfo, Html};
use crate::render::render_post_safely;
use crate::store::Store;

/// Why a build wrote nothing (or stopped writing).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}; fix them and build again (no feed was changed)")]
    Content(#[source] Problems),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What a build did, for the one-line summary.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub read: usize,
    pub published: usize,
    pub drafts: usize,
    pub scheduled: usize,
    /// Past their `expiryDate`.
    pub expired: usize,
    pub written: usize,
    pub unchanged: usize,
    /// Feed files an earlier build wrote that this one no longer does,
    /// deleted (relative paths).
    pub removed: Vec<String>,
    pub output_dir: PathBuf,
    pub elapsed: Duration,
    /// Paths, relative to the output folder with `/` separators, of the files written.
    pub changed: Vec<String>,
    /// When the feeds next change by the clock alone: the earliest
    /// scheduled (not draft) post becomes due, or a published one expires.
    pub next_scheduled: Option<DateTime<Utc>>,
    /// Why the web archive was not written, when it should have been.
    pub archive_warning: Option<String>,
}

impl std::fmt::Display for BuildReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::text::count;
        write!(
            f,
            "read {}: {} published, {}, {} scheduled{}; wrote {} ({} unchanged) to {}",
            count(self.read, "post"),
            self.published,
            count(self.drafts, "draft"),
            self.scheduled,
            match self.expired {
                0 => String::new(),
                n => format!(", {n} expired"),
            },
            count(self.written, "file"),
            self.unchanged,
            self.output_dir.display(),
        )?;
        if !self.removed.is_empty() {
            write!(
                f,
                ", removed {} no longer built",
                count(self.removed.len(), "file")
            )?;
        }
        write!(f, " in {:.2} s", self.elapsed.as_secs_f64())
    }
}

/// Counts of posts by status: published, drafts, scheduled, expired.
pub fn count_statuses(posts: &[Post], now: DateTime<Utc>) -> (usize, usize, usize, usize) {
    let mut counts = (0, 0, 0, 0);
    for post in posts {
        match post.status(now) {
            PostStatus::Published => counts.0 += 1,
            PostStatus::Draft => counts.1 += 1,
            PostStatus::Scheduled => counts.2 += 1,
            PostStatus::Expired => counts.3 += 1,
        }
    }
    counts
}

/// Builds every feed for the posts published at `now` into `output_dir`.
/// Nothing is written unless every post reads cleanly; each file is
/// replaced atomically, and files whose bytes would not change are left alone.
pub fn build(
    config: &Config,
    output_dir: &Path,
    now: DateTime<Utc>,
) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    remove_stale_temp_files(output_dir);
    let corpus = content::read_posts(config);
    if !corpus.problems.is_empty() {
        return Err(BuildError::Content(Problems(corpus.problems)));
    }
    let read = corpus.posts.len();
    let (published, drafts, scheduled, expired) = count_statuses(&corpus.posts, now);
    let next_scheduled = next_scheduled(&corpus.posts, now);
    // The archive is written beside the feeds, under its own lock: its
    // files stand apart from them (and its writing is mostly waiting on
    // the disk while the feeds render).
    let titles = crate::archive::titles(&corpus.posts);
    let (archive, feeds) = std::thread::scope(|scope| {
        let archive = scope.spawn(|| write_archive(config, output_dir, &titles));
        let feeds = plan_feeds(config, corpus.posts, now);
        (
            archive.join().expect("the archive's writer does not panic"),
            feeds,
        )
    });
    let (archive, archive_warning) = archive;
    let (mut entries, plans) = feeds?;
    let mut files = 0;
    let mut staged = Vec::new();
    let (archive_paths, archive_written) = match archive {
        Some(archive) => (Some(archive.paths), archive.changed),
        None => (None, Vec::new()),
    };
    files += archive_paths.as_ref().map_or(0, Vec::len);
    for plan in &plans {
        for file in write_feed_files(config, output_dir, &mut entries, plan, now)? {
            files += 1;
            staged.extend(file);
        }
    }
    // Every file is complete on disk before the first one is renamed into
    // place, so a failed write (a full disk, say) changes no feed.
    // The archive's files are in place already.
    let mut changed = archive_written;
    for file in staged {
        changed.push(file.relative_to(output_dir));
        file.commit()?;
    }
    let written = changed.len();
    // The files this build stands for; those an earlier build wrote and this
    // one no longer does (the feeds of a tag that lost its last post) go.
    let mut current: BTreeSet<String> =
        plans.iter().flat_map(|p| p.paths.iter().cloned()).collect();
    match archive_paths {
        Some(paths) => current.extend(paths),
        // No store to write it from: the archive stays as it is.
        None if config.archive.enabled => current.extend(archived_before(config, output_dir)),
        None => {}
    }
    let removed = remove_unwritten(output_dir, &current)?;
    Ok(BuildReport {
        read,
        published,
        drafts,
        scheduled,
        expired,
        written,
        unchanged: files - written,
        removed,
        output_dir: output_dir.to_path_buf(),
        elapsed: started.elapsed(),
        changed,
        next_scheduled,
        archive_warning,
    })
}

/// Writes the archive from the store, or leaves it as it is: when it is
/// not enabled, when there is no store (a checkout that only builds the
/// feeds), and, with a warning, when the store cannot be read (the store
/// is only read: a build creates and upgrades none, and may run as a user
/// who cannot write it) or the archive cannot be written.
fn write_archive(
    config: &Config,
    output_dir: &Path,
    titles: &crate::archive::Titles,
) -> (Option<crate::archive::Written>, Option<String>) {
    if !config.archive.enabled {
        return (None, None);
    }
    let result = Store::open_read_only(&config.store.path)
        .map_err(crate::archive::ArchiveError::from)
        .and_then(|store| match store {
            Some(store) => crate::archive::write(config, output_dir, &store, titles).map(Some),
            None => Ok(None),
        });
    match result {
        Ok(written) => (written, None),
        Err(e) => (
            None,
            Some(format!(
                "the web archive was left as it is: {:#}; the feeds are built",
                anyhow::Error::from(e)
            )),
        ),
    }
}

/// The archive's files as the last build's manifest lists them.
fn archived_before(config: &Config, output_dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", config.archive.path);
    std::fs::read_to_string(output_dir.join(MANIFEST))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// The build manifest: the files of the output folder the last build
/// wrote, one relative path a line. Hidden, so `serve` does not serve it.
pub const MANIFEST: &str = ".newsletter.manifest";

/// Deletes the files the previous build's manifest lists and `current`
/// does not (and their folders, once empty), then records `current` as the
/// manifest. Only files a build wrote are ever deleted: nothing without a
/// manifest, nothing outside the output folder (no `..`, no absolute path,
/// no folder that is a symbolic link), nothing that is not a file. Best
/// effort: what cannot be deleted stays, and the build goes on.
fn remove_unwritten(
    output_dir: &Path,
    current: &BTreeSet<String>,
) -> Result<Vec<String>, BuildError> {
    let manifest = output_dir.join(MANIFEST);
    let previous = std::fs::read_to_string(&manifest).unwrap_or_default();
    let mut removed = Vec::new();
    for line in previous.lines() {
        let inside = !line.is_empty()
            && line
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
            && !line.contains('\\');
        if !inside || current.contains(line) {
            continue;
        }
        let path = output_dir.join(line);
        // Every folder on the way a real folder and the last a regular file,
        // as a build writes them: a link to a folder elsewhere never leads
        // the deletion out of the output folder, and a link is not ours.
        let mut folder = output_dir.to_path_buf();
        let parts: Vec<&str> = line.split('/').collect();
        let real_folders = parts[..parts.len() - 1].iter().all(|part| {
            folder.push(part);
            std::fs::symlink_metadata(&folder).is_ok_and(|m| m.file_type().is_dir())
        });
        let plain_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        if !real_folders || !plain_file || std::fs::remove_file(&path).is_err() {
            continue;
        }
        removed.push(line.to_string());
        // Folders it leaves empty (tags/<tag>/) go too; best effort.
        let mut folder = path.parent();
        while let Some(dir) = folder.filter(|d| *d != output_dir && d.starts_with(output_dir)) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
            folder = dir.parent();
        }
    }
    let list: String = current.iter().map(|p| format!("{p}\n")).collect();
    if let Some(staged) = stage_file(&manifest, |w| w.write_all(list.as_bytes()))? {
        staged.commit()?;
    }
    Ok(removed)
}

/// The next moment after `now` when the feeds change by the clock alone:
/// a scheduled post becomes due, or a post expires.
pub fn next_scheduled(posts: &[Post], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    posts
        .iter()
        .filter_map(|p| match p.status(now) {
            PostStatus::Scheduled => Some(p.due()),
            PostStatus::Published => p.expires_at,
            PostStatus::Draft | PostStatus::Expired => None,
        })
        .map(|at| at.with_timezone(&Utc))
        .filter(|at| *at > now)
        .min()
}

/// Stages one feed's Atom, RSS and JSON files; `None` for a file that would not change.
///
/// The entries' HTML moves from the Atom document (written while the JSON
/// file is written from the same strings) to the RSS document and back, so
/// the build never holds two copies of it.
fn write_feed_files(
    config: &Config,
    output_dir: &Path,
    entries: &mut [Entry],
    plan: &FeedPlan,
    now: DateTime<Utc>,
) -> Result<[Option<Staged>; 3], BuildError> {
    let site = &config.site;
    let [atom, rss, json] = &plan.paths;
    // Members are ascending positions, so one pass finds them all.
    let mut members: Vec<&mut Entry> = Vec::with_capacity(plan.members.len());
    let mut wanted = plan.members.iter().peekable();
    for (i, entry) in entries.iter_mut().enumerate() {
        if wanted.next_if(|&&m| m == i).is_some() {
            members.push(entry);
        }
    }
    let html: Vec<Html> = members
        .iter_mut()
        .map(|e| std::mem::take(&mut e.html))
        .collect();
    let list: Vec<&Entry> = members.iter().map(|e| &**e).collect();
    let info = FeedInfo::new(
        site,
        plan.title.clone(),
        [atom, rss, json],
        config.feeds.hub.as_ref(),
        &list,
        now.fixed_offset(),
    );

    let atom_doc = feed::atom::document(site, &info, &list, html);
    let (atom_changed, json_changed) = rayon::join(
        || stage_file(&output_dir.join(atom), |w| feed::atom::write(&atom_doc, w)),
        || {
            let html = feed::atom::html_refs(&atom_doc);
            stage_file(&output_dir.join(json), |w| {
                feed::json::write(site, &info, &list, &html, w)
            })
        },
    );
    let rss_doc = feed::rss::document(
        site,
        &info,
        config.feeds.rss_guid,
        &list,
        feed::atom::into_html(atom_doc),
    );
    let rss_changed = stage_file(&output_dir.join(rss), |w| feed::rss::write(&rss_doc, w));
    let html = feed::rss::into_html(rss_doc);
    drop(list);
    for (entry, html) in members.into_iter().zip(html) {
        entry.html = html;
    }
    Ok([atom_changed?, rss_changed?, json_changed?])
}

/// One feed to write: its title, its three file paths inside the output
/// folder, and its entries (indices into the rendered entries, newest first).
#[derive(Debug, Clone)]
pub struct FeedPlan {
    pub title: String,
    pub paths: [String; 3],
    pub members: Vec<usize>,
}

/// Renders the posts that some feed carries (each once, in parallel; a
/// post's Markdown is read only while it is rendered) and says which feed
/// carries which. `posts` are newest first; their bodies are read here.
pub fn plan_feeds(
    config: &Config,
    posts: Vec<Post>,
    now: DateTime<Utc>,
) -> Result<(Vec<Entry>, Vec<FeedPlan>), BuildError> {
    let site = &config.site;
    let feeds = &config.feeds;
    // An email-only post is in no feed; its archive page is its web copy.
    let live: Vec<Post> = posts
        .into_iter()
        .filter(|p| p.status(now) == PostStatus::Published && p.mailing != Mailing::Only)
        .collect();
    let limit = if feeds.limit == 0 {
        usize::MAX
    } else {
        feeds.limit
    };

    let mut plans = vec![FeedPlan {
        title: site.title.clone(),
        paths: [feeds.atom.clone(), feeds.rss.clone(), feeds.json.clone()],
        members: (0..live.len().min(limit)).collect(),
    }];
    if feeds.per_tag {
        // Tags that differ only in case are one tag, named as first seen.
        let mut by_tag: BTreeMap<String, (String, Vec<usize>)> = BTreeMap::new();
        for (i, post) in live.iter().enumerate() {
            for tag in &post.tags {
                let members = &mut by_tag
                    .entry(tag.to_lowercase())
                    .or_insert_with(|| (tag.clone(), Vec::new()))
                    .1;
                if members.len() < limit && members.last() != Some(&i) {
                    members.push(i);
                }
            }
        }
        // Different tags may share a folder name ("C++" and "C#" are both
        // "c"): the later ones, in sorted order, get "-2", "-3", ...
        let mut folders_used = std::collections::HashSet::new();
        for (tag, members) in by_tag.into_values() {
            let base = tag_folder(&tag);
            let folder = (1..)
                .map(|n| {
                    if n == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    }
                })
                .find(|f| folders_used.insert(f.clone()))
                .expect("an unused folder name exists");
            let path = |name: &str| format!("tags/{folder}/{}", file_name(name));
            plans.push(FeedPlan {
                title: format!("{}: {tag}", site.title),
                paths: [path(&feeds.atom), path(&feeds.rss), path(&feeds.json)],
                members,
            });
        }
    }

    // Only the posts some feed carries are rendered; the index of each
    // rendered entry is its position among them.
    let mut needed = vec![false; live.len()];
    for plan in &plans {
        for &i in &plan.members {
            needed[i] = true;
        }
    }
    let mut position = vec![usize::MAX; live.len()];
    let mut next = 0;
    for (i, &need) in needed.iter().enumerate() {
        if need {
            position[i] = next;
            next += 1;
        }
    }
    for plan in &mut plans {
        for i in &mut plan.members {
            *i = position[*i];
        }
    }
    let results: Vec<Result<Entry, Problem>> = live
        .into_par_iter()
        .zip(needed)
        .filter(|(_, need)| *need)
        .map(|(post, _)| entry_for(config, &post))
        .collect();
    let mut entries = Vec::with_capacity(results.len());
    let mut problems = Vec::new();
    for result in results {
        match result {
            Ok(entry) => entries.push(entry),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok((entries, plans))
    } else {
        Err(BuildError::Content(Problems(problems)))
    }
}

fn entry_for(config: &Config, post: &Post) -> Result<Entry, Problem> {
    let rendered = render_post_safely(config, post, config.feeds.iframes, None)?;
    Ok(Entry::new(
        &config.site,
        post,
        rendered,
        config.feeds.full_content,
    ))
}

/// A tag as a folder name: lowercase words joined by `-`, percent-encoded in URLs.
pub fn tag_folder(tag: &str) -> String {
    let mut out = String::new();
    for word in tag
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('-');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    if out.is_empty() { "tag".into() } else { out }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

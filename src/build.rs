//! `newsletter build`: posts → feeds in the output folder.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use url::Url;

use crate::config::Config;
use crate::content::{self, Post, Problem, Status};
use crate::feed::{self, Entry, FeedInfo};
use crate::html::feed_safe;
use crate::render::render_post;

/// Why a build wrote nothing (or stopped writing).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{} problem(s) in the content; fix them and build again (no feed was changed)", .0.len())]
    Content(Vec<Problem>),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a build did, for the one-line summary.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub read: usize,
    pub published: usize,
    pub drafts: usize,
    pub scheduled: usize,
    pub written: usize,
    pub unchanged: usize,
    pub output_dir: PathBuf,
    pub elapsed: Duration,
}

impl std::fmt::Display for BuildReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "read {}: {} published, {}, {} scheduled; wrote {} ({} unchanged) to {} in {:.2} s",
            plural(self.read, "post", "posts"),
            self.published,
            plural(self.drafts, "draft", "drafts"),
            self.scheduled,
            plural(self.written, "file", "files"),
            self.unchanged,
            self.output_dir.display(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Counts of posts by status.
pub fn count_statuses(posts: &[Post], now: DateTime<Utc>) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for post in posts {
        match post.status(now) {
            Status::Published => counts.0 += 1,
            Status::Draft => counts.1 += 1,
            Status::Scheduled => counts.2 += 1,
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
    let corpus = content::read_posts(config);
    if !corpus.problems.is_empty() {
        return Err(BuildError::Content(corpus.problems));
    }
    let (published, drafts, scheduled) = count_statuses(&corpus.posts, now);
    let files = render_feeds(config, &corpus.posts, now);
    let mut written = 0;
    for (path, bytes) in &files {
        if write_if_changed(&output_dir.join(path), bytes)? {
            written += 1;
        }
    }
    Ok(BuildReport {
        read: corpus.posts.len(),
        published,
        drafts,
        scheduled,
        written,
        unchanged: files.len() - written,
        output_dir: output_dir.to_path_buf(),
        elapsed: started.elapsed(),
    })
}

/// Every feed file (path inside the output folder → bytes) for `posts`
/// (newest first) as they stand at `now`.
pub fn render_feeds<'a>(
    config: &Config,
    posts: &'a [Post],
    now: DateTime<Utc>,
) -> BTreeMap<String, Vec<u8>> {
    let site = &config.site;
    let feeds = &config.feeds;
    let live: Vec<&Post> = posts
        .iter()
        .filter(|p| p.status(now) == Status::Published)
        .collect();
    let limit = if feeds.limit == 0 {
        usize::MAX
    } else {
        feeds.limit
    };
    let take = |list: Vec<&'a Post>| -> Vec<&'a Post> { list.into_iter().take(limit).collect() };

    // Each feed is a title, three paths and its posts.
    let mut plans: Vec<(String, [String; 3], Vec<&Post>)> = vec![(
        site.title.clone(),
        [feeds.atom.clone(), feeds.rss.clone(), feeds.json.clone()],
        take(live.clone()),
    )];
    if feeds.per_tag {
        let mut by_tag: BTreeMap<String, (String, Vec<&Post>)> = BTreeMap::new();
        for post in &live {
            for tag in &post.tags {
                by_tag
                    .entry(tag_folder(tag))
                    .or_insert_with(|| (tag.clone(), Vec::new()))
                    .1
                    .push(post);
            }
        }
        for (folder, (tag, list)) in by_tag {
            let path = |name: &str| format!("tags/{folder}/{}", file_name(name));
            plans.push((
                format!("{}: {tag}", site.title),
                [path(&feeds.atom), path(&feeds.rss), path(&feeds.json)],
                take(list),
            ));
        }
    }

    // Render each post once, however many feeds carry it.
    let mut needed: Vec<&Post> = plans.iter().flat_map(|p| p.2.iter().copied()).collect();
    needed.sort_by_key(|p| p.permalink.as_str());
    needed.dedup_by_key(|p| p.permalink.as_str());
    let rendered: HashMap<&str, Entry<'_>> = needed
        .par_iter()
        .map(|post| (post.permalink.as_str(), entry_for(config, post)))
        .collect();

    let now = now.fixed_offset();
    let mut files = BTreeMap::new();
    for (title, paths, list) in &plans {
        let entries: Vec<Entry<'_>> = list
            .iter()
            .map(|p| rendered[p.permalink.as_str()].clone())
            .collect();
        let [atom, rss, json] = paths;
        let info = FeedInfo::new(site, title.clone(), [atom, rss, json], &entries, now);
        let (atom_bytes, (rss_bytes, json_bytes)) = rayon::join(
            || feed::atom::render(site, &info, &entries),
            || {
                rayon::join(
                    || feed::rss::render(site, &info, &entries),
                    || feed::json::render(site, &info, &entries),
                )
            },
        );
        files.insert(atom.clone(), atom_bytes);
        files.insert(rss.clone(), rss_bytes);
        files.insert(json.clone(), json_bytes);
    }
    files
}

fn entry_for<'a>(config: &Config, post: &'a Post) -> Entry<'a> {
    let site = &config.site;
    let page = Url::parse(&site.url_for(&post.permalink))
        .expect("a permalink under an absolute base URL is a URL");
    let rendered = render_post(&post.body, post.summary.as_deref(), &post.title);
    let policy = config.feeds.iframes;
    let summary = feed_safe(&rendered.excerpt, &page, policy);
    let content = config
        .feeds
        .full_content
        .then(|| feed_safe(&rendered.content, &page, policy));
    Entry::new(site, post, summary, content)
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

/// Replaces `path` with `bytes` through a temporary file and a rename, so a
/// reader sees the old file or the new one, never half of one. Returns false
/// when the file already held exactly these bytes.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, BuildError> {
    let error = |source| BuildError::Write {
        path: path.to_path_buf(),
        source,
    };
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(error)?;
    let mut file = tempfile::Builder::new()
        .prefix(".newsletter-")
        .tempfile_in(dir)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.as_file().sync_all().map_err(error)?;
    set_readable(file.as_file()).map_err(error)?;
    file.persist(path).map_err(|e| error(e.error))?;
    Ok(true)
}

#[cfg(unix)]
fn set_readable(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

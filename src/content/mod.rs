//! The content model: posts read from the content folder.

pub mod date;
pub mod front_matter;

pub use front_matter::Mailing;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use chrono_tz::Tz;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use rayon::prelude::*;

use crate::config::{Config, PERMALINK_TOKENS, UrlDate, foreign_placeholder};
use front_matter::LineError;

/// One post, as its front matter and file name describe it. The body is
/// read from the file again when a feed or digest renders it, so a build of
/// thousands of posts never holds all their Markdown at once.
#[derive(Debug, Clone)]
pub struct Post {
    /// The file it came from.
    pub path: PathBuf,
    pub title: String,
    pub published: DateTime<FixedOffset>,
    /// The `updated` key, else `published`.
    pub updated: DateTime<FixedOffset>,
    /// Empty when the post names no author (the site's author is used then).
    pub authors: Vec<String>,
    /// `draft: true`, Jekyll's `published: false`, or a file under a
    /// `_drafts` folder: never published.
    pub draft: bool,
    /// Hugo's `publishDate`: not published before it (it leaves the post's
    /// date, and so its permalink, as they are).
    pub publish_at: Option<DateTime<FixedOffset>>,
    /// Hugo's `expiryDate`: from then on in no feed and no mailing.
    pub expires_at: Option<DateTime<FixedOffset>>,
    pub tags: Vec<String>,
    /// The `summary` key, Markdown; it replaces the excerpt when present.
    pub summary: Option<String>,
    /// URL-safe, percent-encoded where needed.
    pub slug: String,
    /// Site path, e.g. `/blog/2017/09/04/promcon-2017-recap/`.
    pub permalink: String,
    /// The permalink versions before 0.3 made (the post's own date always,
    /// no per-post `permalink`), when it differs: a store's record of the
    /// posts announced before then knows the post by it.
    pub former_permalink: Option<String>,
    /// The file's path under `content.dir`, with `/` between folders: what
    /// the store remembers an announced post by, since it stays when the
    /// permalink changes.
    pub source: String,
    /// The `email` key: in a digest, or a letter of its own.
    pub mailing: Mailing,
    /// Markdown after the front matter, when the post was parsed from text
    /// rather than read from its file.
    body: Option<String>,
}

/// Where a post stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostStatus {
    Published,
    Draft,
    /// Dated after "now": published when its time comes.
    Scheduled,
    /// Past its `expiryDate` (Hugo): published no longer.
    Expired,
}

impl Post {
    /// When the post is published: its date, or a later `publishDate`.
    pub fn due(&self) -> DateTime<FixedOffset> {
        self.publish_at
            .map_or(self.published, |at| at.max(self.published))
    }

    /// The Markdown body: re-read from the post's file unless it came with the post.
    pub fn body(&self) -> Result<String, Problem> {
        if let Some(body) = &self.body {
            return Ok(body.clone());
        }
        let text = read_text(&self.path)?;
        let text = normalize_source(&text);
        let split = front_matter::split(&text).map_err(|e| Problem {
            path: self.path.clone(),
            line: e.line,
            message: format!("changed while it was being read: {}", e.message),
        })?;
        Ok(split.body.to_string())
    }

    pub fn status(&self, now: DateTime<Utc>) -> PostStatus {
        if self.draft {
            PostStatus::Draft
        } else if self.expires_at.is_some_and(|at| at <= now) {
            PostStatus::Expired
        } else if self.due() > now {
            PostStatus::Scheduled
        } else {
            PostStatus::Published
        }
    }
}

/// A problem with one content file, shown as `path:line: message`, or
/// `path: message` when it is about no line (`line` 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = shown_path(&self.path);
        match self.line {
            0 => write!(f, "{path}: {}", self.message),
            line => write!(f, "{path}:{line}: {}", self.message),
        }
    }
}

/// `path` for a log line or a problem report: a name with a control
/// character (a newline, a terminal escape) is written with escapes, so a
/// file's name cannot forge a line or colour the terminal.
pub fn shown_path(path: &Path) -> String {
    let name = path.display().to_string();
    if name.chars().any(char::is_control) {
        name.escape_debug().to_string()
    } else {
        name
    }
}

/// Every problem found in the posts: the error that stops a build or a
/// send. `main` prints each problem on its own line before the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in the content",
            crate::text::count(self.0.len(), "problem")
        )
    }
}

impl std::error::Error for Problems {}

/// All posts of the content folder, newest first, and every problem found.
#[derive(Debug, Default)]
pub struct Corpus {
    pub posts: Vec<Post>,
    pub problems: Vec<Problem>,
    /// How many post files were found, readable or not.
    pub files: usize,
}

/// Reads every `*.md` / `*.markdown` file under `config.content.dir`.
pub fn read_posts(config: &Config) -> Corpus {
    let dir = &config.content.dir;
    let (files, mut problems) = find_post_files(dir);
    let file_count = files.len();
    let results: Vec<Result<Post, Problem>> = files
        .par_iter()
        .map(|path| read_post(path, config))
        .collect();
    let mut posts = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(post) => posts.push(post),
            Err(problem) => problems.push(problem),
        }
    }
    problems.extend(duplicate_permalinks(&posts));
    posts.sort_by(|a, b| {
        b.published
            .cmp(&a.published)
            .then_with(|| a.permalink.cmp(&b.permalink))
    });
    Corpus {
        posts,
        problems,
        files: file_count,
    }
}

/// Post files in a stable order; hidden files and folders are skipped.
fn find_post_files(dir: &Path) -> (Vec<PathBuf>, Vec<Problem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    if !dir.is_dir() {
        problems.push(Problem {
            path: dir.to_path_buf(),
            line: 0,
            message:
                "the content folder does not exist: create it or set content.dir in the config"
                    .into(),
        });
        return (files, problems);
    }
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.depth() == 0 || !is_hidden(entry.file_name()));
    for entry in walk {
        match entry {
            Ok(entry)
                if entry.file_type().is_file()
                    && is_markdown(entry.path())
                    && !is_section_page(entry.path()) =>
            {
                files.push(entry.into_path());
            }
            Ok(_) => {}
            Err(e) => {
                let path = e.path().unwrap_or(dir);
                let message = if e.loop_ancestor().is_some() {
                    "symbolic link loop: this link points at a folder that contains it; remove the link"
                        .into()
                } else if let Some(target) = broken_link_target(path) {
                    // A link to nothing holds no post: skip it, as any
                    // other file that is not a post, unless it is named as one.
                    if !is_markdown(path) || path.file_name().is_some_and(is_hidden) {
                        continue;
                    }
                    format!(
                        "is a symbolic link to {}, which cannot be read as a file; \
                         restore its target or remove the link",
                        target.display()
                    )
                } else {
                    format!("cannot read: {e}")
                };
                problems.push(Problem {
                    path: path.to_path_buf(),
                    line: 0,
                    message,
                });
            }
        }
    }
    (files, problems)
}

/// Where a symbolic link points, when that is nowhere (a missing file, or
/// links that lead back to themselves).
fn broken_link_target(path: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(path).ok()?;
    std::fs::metadata(path).is_err().then_some(target)
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

/// Zola's and Hugo's `_index.md`: a section's list page, which Zola
/// requires in every section. It has no date and is no post in their feeds.
fn is_section_page(path: &Path) -> bool {
    path.file_stem().is_some_and(|stem| stem == "_index")
}

fn is_markdown(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("md" | "markdown")
    )
}

/// Reads one post file (under `content.dir` or anywhere).
pub fn read_post(path: &Path, config: &Config) -> Result<Post, Problem> {
    let text = read_text(path)?;
    parse_text(&text, path, config, false).map_err(|e| Problem {
        path: path.to_path_buf(),
        line: e.line,
        message: e.message,
    })
}

/// A post file's text; a file that is not UTF-8 is a problem on the line of its first bad byte.
fn read_text(path: &Path) -> Result<String, Problem> {
    let bytes = std::fs::read(path).map_err(|e| Problem {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Problem {
            path: path.to_path_buf(),
            line,
            message: format!("is not UTF-8 text (bad byte at offset {at}); save the file as UTF-8"),
        }
    })
}

/// Builds a post from its source text; `path` gives the fallback slug and date.
pub fn parse_post(text: &str, path: &Path, config: &Config) -> Result<Post, LineError> {
    parse_text(text, path, config, true)
}

fn parse_text(
    text: &str,
    path: &Path,
    config: &Config,
    keep_body: bool,
) -> Result<Post, LineError> {
    let text = normalize_source(text);
    let split = front_matter::split(&text)?;
    let fm = front_matter::parse(&split)?;
    let zone: Tz = config.site.timezone;

    let title = fm.title.filter(|t| !t.is_empty()).ok_or_else(|| {
        LineError::new(
            1,
            "the post has no title: add `title: ...` to its front matter",
        )
    })?;
    // A date key's value, or the error naming its key and line.
    let dated = |d: &front_matter::Dated| {
        date::parse_date(&d.text, zone)
            .map_err(|e| LineError::new(d.line, format!("`{}`: {e}", d.key)))
    };
    let (file_date, file_slug) = name_parts(path);
    let published = match (&fm.date, file_date) {
        (Some(d), _) => dated(d)?,
        (None, Some(d)) => date::parse_date(d, zone).map_err(|e| LineError::new(1, e))?,
        (None, None) => {
            return Err(LineError::new(
                1,
                "the post has no date: add `created_at: YYYY-MM-DD` to its front matter",
            ));
        }
    };
    let updated = fm
        .updated
        .as_ref()
        .map(dated)
        .transpose()?
        .unwrap_or(published);
    let publish_at = fm.publish_date.as_ref().map(dated).transpose()?;
    let expires_at = fm.expiry_date.as_ref().map(dated).transpose()?;
    // Jekyll keeps drafts in `_drafts/`; they are never published.
    let in_drafts = path.components().any(|c| c.as_os_str() == "_drafts");
    let slug = encode_slug(fm.slug.as_deref().unwrap_or(&file_slug));
    if slug.is_empty() {
        return Err(LineError::new(
            1,
            "the post has no slug: name the file like 2017-09-04-my-post.md or add `slug: ...`",
        ));
    }
    // A path segment of dots leaves its folder: `/blog/2017/09/04/../` is
    // `/blog/2017/09/`, another page.
    if matches!(slug.as_str(), "." | "..") {
        return Err(LineError::new(
            1,
            format!(
                "the slug `{slug}` would make a permalink that leaves its folder: give the post a `slug:` with a letter or digit in it"
            ),
        ));
    }
    let source = source_path(path, &config.content.dir);
    let url_date = match (config.content.url_date, file_date) {
        (UrlDate::Post, _) | (_, None) => published,
        // nanoc (the Prometheus site) dates posts by `created_at` and takes
        // the URL's date from the file name; Jekyll, Hugo and Zola use `date`.
        (UrlDate::Auto, Some(_)) if fm.date.as_ref().is_some_and(|d| d.key != "created_at") => {
            published
        }
        (UrlDate::Auto | UrlDate::File, Some(d)) => {
            date::parse_date(d, zone).map_err(|e| LineError::new(1, e))?
        }
    };
    // Jekyll's posts folder: its rules for `:title` and for tags.
    let in_posts = path.components().any(|c| c.as_os_str() == "_posts");
    let title_part = if in_posts {
        // Jekyll's `:title` is the file name's (or the `slug:`).
        slug.clone()
    } else {
        // Hugo's is the title, made a path (a `/` in it is a folder).
        urlize(&title)
            .split('/')
            .map(encode_slug)
            .collect::<Vec<_>>()
            .join("/")
    };
    let uses_title = |pattern: &str| pattern.contains(":title");
    if title_part.split('/').any(|s| matches!(s, "." | ".."))
        && (uses_title(&config.content.permalink)
            || fm
                .permalink
                .as_ref()
                .is_some_and(|(own, _)| uses_title(own)))
    {
        return Err(LineError::new(
            1,
            format!(
                "the title makes the path `{title_part}` for :title, whose `.` or `..` would leave its folder: \
                 give the post its own `permalink:` or another title"
            ),
        ));
    }
    let parts = UrlParts {
        slug: &slug,
        title: &title_part,
        section: section(&source),
    };
    let pattern = &config.content.permalink;
    let permalink = match &fm.permalink {
        Some((own, line)) => {
            let own = own_permalink(own, config).map_err(|e| LineError::new(*line, e))?;
            expand_permalink(&own, &url_date, &parts)
        }
        None => expand_permalink(pattern, &url_date, &parts),
    };
    let former = expand_permalink(pattern, &published, &parts);
    Ok(Post {
        path: path.to_path_buf(),
        title,
        published,
        updated,
        authors: fm.authors,
        draft: fm.draft || in_drafts,
        publish_at,
        expires_at,
        tags: if in_posts { fm.jekyll_tags } else { fm.tags },
        summary: fm.summary,
        slug,
        former_permalink: (former != permalink).then_some(former),
        permalink,
        source,
        mailing: fm.mailing,
        body: keep_body.then(|| split.body.to_string()),
    })
}

/// Drops a byte-order mark and turns CRLF / CR line endings into LF.
fn normalize_source(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n").into()
    } else {
        text.into()
    }
}

/// The date and slug a file name carries: `2017-09-04-my-post.md` → (2017-09-04, my-post).
/// A Hugo page bundle (`my-post/index.md`) takes its folder's name.
fn name_parts(path: &Path) -> (Option<&str>, String) {
    let mut stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if matches!(stem, "index" | "_index") {
        stem = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|s| s.to_str())
            .unwrap_or(stem);
    }
    let dated = stem.len() > 11
        && stem.as_bytes()[10] == b'-'
        && chrono::NaiveDate::parse_from_str(&stem[..10], "%Y-%m-%d").is_ok();
    if dated {
        (Some(&stem[..10]), stem[11..].to_string())
    } else {
        (None, stem.to_string())
    }
}

/// Characters a path segment may not carry as they are (RFC 3986 pchar keeps the rest).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn encode_slug(slug: &str) -> String {
    utf8_percent_encode(slug.trim(), SEGMENT).to_string()
}

/// A post's own `permalink` (`url`, `path`) as a site path: each segment
/// percent-encoded as a slug is (what was written encoded is decoded
/// first, so both spellings give one path); refused when it could not be
/// a page of this site.
fn own_permalink(own: &str, config: &Config) -> Result<String, String> {
    let advice =
        "write a path on this site, like /about/ (the site's address comes from site.base_url)";
    if own.contains("://") || own.starts_with("//") || own.contains(['?', '#']) {
        return Err(format!("`{own}` must be a path on this site: {advice}"));
    }
    if own.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!(
            "`{}` holds a backslash or a control character: {advice}",
            own.escape_debug()
        ));
    }
    if let Some(word) = foreign_placeholder(own) {
        return Err(format!(
            "`{own}` has `{word}`, a placeholder this tool does not fill in; use {}",
            PERMALINK_TOKENS.join(", ")
        ));
    }
    let decoded = percent_encoding::percent_decode_str(own).decode_utf8_lossy();
    let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| matches!(*s, "." | "..")) {
        return Err(format!("`{own}` has a `.` or `..` segment: {advice}"));
    }
    let mut path = String::from("/");
    path.push_str(
        &segments
            .iter()
            .map(|s| encode_slug(s))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if own.ends_with('/') && path.len() > 1 {
        path.push('/');
    }
    let feeds = &config.feeds;
    let taken = path == "/"
        || [&feeds.atom, &feeds.rss, &feeds.json]
            .iter()
            .any(|f| path == format!("/{}", f.trim_start_matches('/')));
    if taken {
        return Err(format!(
            "`{own}` is the site's home page or one of its feeds, not a post's own page: {advice}"
        ));
    }
    Ok(path)
}

/// What a permalink's placeholders stand for, besides the date.
struct UrlParts<'a> {
    slug: &'a str,
    title: &'a str,
    section: &'a str,
}

/// `pattern` with its placeholders (see [`crate::config::PERMALINK_TOKENS`])
/// filled in, one pass, so a slug holding `:year` stays as it is; an empty
/// `:section` leaves no `//`.
fn expand_permalink(pattern: &str, date: &DateTime<FixedOffset>, parts: &UrlParts<'_>) -> String {
    let mut out = String::with_capacity(pattern.len() + parts.slug.len());
    let mut rest = pattern;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match PERMALINK_TOKENS.iter().find(|t| rest.starts_with(**t)) {
            Some(token) => {
                match *token {
                    ":year" => out.push_str(&format!("{:04}", date.year())),
                    ":month" => out.push_str(&format!("{:02}", date.month())),
                    ":day" => out.push_str(&format!("{:02}", date.day())),
                    ":slug" => out.push_str(parts.slug),
                    ":title" => out.push_str(parts.title),
                    _ => out.push_str(parts.section),
                }
                rest = &rest[token.len()..];
            }
            None => {
                out.push(':');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    while let Some(at) = out.find("//") {
        out.remove(at);
    }
    out
}

/// The file's path under `dir`, folders joined by `/`.
fn source_path(path: &Path, dir: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// Hugo's section: the first folder under the content folder (none for a
/// post at its top).
fn section(source: &str) -> &str {
    match source.split_once('/') {
        Some((first, _)) => first,
        None => "",
    }
}

/// A title made a URL path, as Hugo's `urlize` does (Hugo 0.111, checked
/// against its output): percent escapes and `+` read as in a query string
/// (when every escape is whole), then letters, digits and `. / \\ _ # + ~ - @`
/// kept, each run of white space one `-` (none at either end, none beside
/// a `-` already there), everything else dropped; lowercase.
fn urlize(title: &str) -> String {
    let escapes_whole = title.match_indices('%').all(|(at, _)| {
        title
            .get(at + 1..at + 3)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    let title = if escapes_whole {
        let spaced = title.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned()
    } else {
        title.to_string()
    };
    let mut out = String::with_capacity(title.len());
    let (mut space_before, mut was_hyphen) = (false, false);
    for c in title.chars() {
        let kept = c.is_alphanumeric()
            || matches!(c, '.' | '/' | '\\' | '_' | '#' | '+' | '~' | '-' | '@');
        if kept {
            was_hyphen = c == '-';
            if space_before && !was_hyphen {
                out.push('-');
            }
            space_before = false;
            out.extend(c.to_lowercase());
        } else if c.is_whitespace() && !out.is_empty() && !was_hyphen {
            space_before = true;
        }
    }
    out
}

fn duplicate_permalinks(posts: &[Post]) -> Vec<Problem> {
    let mut seen: HashMap<String, &Post> = HashMap::new();
    let mut problems = Vec::new();
    for post in posts {
        // `/é/` and `/%C3%A9/` are one URL.
        let url = percent_encoding::percent_decode_str(&post.permalink)
            .decode_utf8_lossy()
            .into_owned();
        if let Some(first) = seen.insert(url, post) {
            let (a, b) = if first.path < post.path {
                (first, post)
            } else {
                (post, first)
            };
            problems.push(Problem {
                path: b.path.clone(),
                line: 1,
                message: format!(
                    "has the same permalink {} as {}: give one of them another `slug:` or date",
                    post.permalink,
                    a.path.display()
                ),
            });
        }
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "[site]\nbase_url = \"https://example.org\"\n",
            Path::new("config.toml"),
            Path::new("."),
        )
        .unwrap()
    }

    fn post(name: &str, text: &str) -> Result<Post, LineError> {
        parse_post(text, Path::new(name), &config())
    }

    #[test]
    fn slug_and_permalink_from_file_name_and_created_at() {
        let p = post(
            "2021-02-18-introducing-the-@-modifier.md",
            "---\ntitle: x\ncreated_at: 2021-02-18\n---\n",
        )
        .unwrap();
        assert_eq!(p.slug, "introducing-the-@-modifier");
        assert_eq!(p.permalink, "/blog/2021/02/18/introducing-the-@-modifier/");
        // A nanoc post: created_at dates it, the file name gives its URL
        // (prometheus.io's `Rules`); the store knows its former URL.
        let p = post(
            "2017-04-10-sneak.md",
            "---\ntitle: x\ncreated_at: 2017-04-11\n---\n",
        )
        .unwrap();
        assert_eq!(p.published.to_rfc3339(), "2017-04-11T00:00:00+00:00");
        assert_eq!(p.permalink, "/blog/2017/04/10/sneak/");
        assert_eq!(
            p.former_permalink.as_deref(),
            Some("/blog/2017/04/11/sneak/")
        );
        // A Jekyll or Hugo post (`date`): its own date, as they do.
        let p = post(
            "2017-04-10-sneak.md",
            "---\ntitle: x\ndate: 2017-04-11\n---\n",
        )
        .unwrap();
        assert_eq!(p.permalink, "/blog/2017/04/11/sneak/");
        assert_eq!(p.former_permalink, None);
    }

    fn config_with(content: &str) -> Config {
        Config::parse(
            &format!(
                "[site]\nbase_url = \"https://example.org\"\n[content]\ndir = \"c\"\n{content}\n"
            ),
            Path::new("config.toml"),
            Path::new("/site"),
        )
        .unwrap()
    }

    #[test]
    fn url_date_overrides_and_placeholders() {
        let created = "---\ntitle: Héllo, World!\ncreated_at: 2017-04-11\n---\n";
        let dated = "---\ntitle: x\ndate: 2017-04-11\n---\n";
        let at = |content: &str, file: &str, text: &str| {
            parse_post(
                text,
                &Path::new("/site/c").join(file),
                &config_with(content),
            )
            .unwrap()
            .permalink
        };
        assert_eq!(
            at("url_date = \"post\"", "2017-04-10-a.md", created),
            "/blog/2017/04/11/a/"
        );
        assert_eq!(
            at("url_date = \"file\"", "2017-04-10-a.md", dated),
            "/blog/2017/04/10/a/"
        );
        assert_eq!(
            at("url_date = \"file\"", "a.md", dated),
            "/blog/2017/04/11/a/"
        );
        // Hugo: :title is the title made a path, :section the first folder.
        let hugo = "permalink = \"/:section/:year/:title/\"";
        assert_eq!(
            at(hugo, "posts/2017-04-10-a.md", created),
            "/posts/2017/héllo-world/".replace('é', "%C3%A9")
        );
        assert_eq!(at(hugo, "a.md", dated), "/2017/x/");
        // Jekyll: :title is the file name's slug.
        let jekyll = "permalink = \"/:title.html\"";
        assert_eq!(
            at(jekyll, "_posts/2017-04-10-my-post.md", dated),
            "/my-post.html"
        );
        // A slug that looks like a placeholder stays as it is.
        let slug = "---\ntitle: x\ndate: 2017-04-11\nslug: \":year\"\n---\n";
        assert_eq!(at("", "a.md", slug), "/blog/2017/04/11/:year/");
    }

    #[test]
    fn a_title_of_dots_cannot_climb_out_under_title() {
        let hugo = config_with("permalink = \"/posts/:title/\"");
        let text = "---\ntitle: \"../up\"\ndate: 2024-01-01\n---\n";
        let err = parse_post(text, Path::new("/site/c/a.md"), &hugo).unwrap_err();
        assert!(err.message.contains("`../up`"), "{}", err.message);
        // Under a pattern without :title the title is no part of the URL.
        let p = parse_post(text, Path::new("/site/c/a.md"), &config_with("")).unwrap();
        assert_eq!(p.permalink, "/blog/2024/01/01/a/");
    }

    #[test]
    fn a_post_of_its_own_path_keeps_it() {
        let own = |key: &str, value: &str| {
            post(
                "2020-01-02-a.md",
                &format!("---\ntitle: x\ndate: 2020-01-02\n{key}: {value}\n---\n"),
            )
        };
        let p = own("permalink", "/about/").unwrap();
        assert_eq!(p.permalink, "/about/");
        assert_eq!(p.former_permalink.as_deref(), Some("/blog/2020/01/02/a/"));
        assert_eq!(
            own("url", "notes/:year/:slug/").unwrap().permalink,
            "/notes/2020/a/"
        );
        let err = own("permalink", "https://elsewhere.example/x/").unwrap_err();
        assert_eq!(err.line, 4);
        assert!(
            err.message.contains("must be a path on this site"),
            "{}",
            err.message
        );
        // Encoded as a slug is, either spelling one path.
        assert_eq!(
            own("permalink", "\"/a b/é/\"").unwrap().permalink,
            "/a%20b/%C3%A9/"
        );
        assert_eq!(
            own("permalink", "/a%20b/%C3%A9/").unwrap().permalink,
            "/a%20b/%C3%A9/"
        );
        for bad in [
            "/../../etc/x/",
            "/a/./b/",
            "'\\\\evil\\x'",
            "\"/x\\u0001y/\"",
            "/",
            "/atom.xml",
            "feed.json",
        ] {
            let err = own("permalink", bad).unwrap_err();
            assert_eq!(err.line, 4, "{bad}");
        }
    }

    #[test]
    fn slug_key_and_encoding() {
        let p = post(
            "a.md",
            "---\ntitle: x\ndate: 2020-01-01\nslug: hé llo?\n---\n",
        )
        .unwrap();
        assert_eq!(p.slug, "h%C3%A9%20llo%3F");
        let p = post("my-post/index.md", "---\ntitle: x\ndate: 2020-01-01\n---\n").unwrap();
        assert_eq!(p.slug, "my-post");
    }

    #[test]
    fn file_name_date_is_the_fallback() {
        let p = post("2019-05-06-x.md", "---\ntitle: x\n---\n").unwrap();
        assert_eq!(p.published.to_rfc3339(), "2019-05-06T00:00:00+00:00");
        let err = post("x.md", "---\ntitle: x\n---\n").unwrap_err();
        assert!(err.message.contains("no date"));
    }

    #[test]
    fn bom_crlf_and_no_trailing_newline() {
        let p = post(
            "2019-05-06-x.md",
            "\u{feff}---\r\ntitle: \"Crlf: yes\"\r\ncreated_at: 2019-05-06\r\n---\r\nBody\r\nline",
        )
        .unwrap();
        assert_eq!(p.title, "Crlf: yes");
        assert_eq!(p.body().unwrap(), "Body\nline");
    }

    #[test]
    fn missing_title_and_bad_date_name_the_line() {
        let err = post("x.md", "---\ncreated_at: 2019-05-06\n---\n").unwrap_err();
        assert!(err.message.contains("no title"));
        let err = post("x.md", "---\ntitle: x\n\ncreated_at: 2019-13-06\n---\n").unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err.message.contains("created_at"), "{}", err.message);
    }

    #[test]
    fn links_to_nothing_are_skipped_unless_named_as_posts() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path();
        std::fs::write(content.join("ok.md"), "---\ntitle: x\n---\n").unwrap();
        symlink("nowhere.png", content.join("image.png")).unwrap();
        symlink("b.txt", content.join("a.txt")).unwrap();
        symlink("a.txt", content.join("b.txt")).unwrap();
        symlink("nowhere.md", content.join(".hidden.md")).unwrap();
        let (files, problems) = find_post_files(content);
        assert_eq!(files, [content.join("ok.md")]);
        assert!(problems.is_empty(), "{problems:?}");

        symlink("gone.md", content.join("post.md")).unwrap();
        let (_, problems) = find_post_files(content);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, content.join("post.md"));
        assert_eq!(
            problems[0].message,
            "is a symbolic link to gone.md, which cannot be read as a file; \
             restore its target or remove the link"
        );
    }

    #[test]
    fn expiry_date_ends_publication_and_is_the_next_change() {
        let at = |t: &str| t.parse::<DateTime<Utc>>().unwrap();
        let text = "---\ntitle: x\ndate: 2020-01-02\nexpiryDate: 2020-01-05T00:00:00Z\n---\n";
        let p = post("x.md", text).unwrap();
        assert_eq!(p.status(at("2020-01-01T00:00:00Z")), PostStatus::Scheduled);
        assert_eq!(p.status(at("2020-01-04T23:59:59Z")), PostStatus::Published);
        assert_eq!(p.status(at("2020-01-05T00:00:00Z")), PostStatus::Expired);
        let posts = [p];
        let next = |now| crate::build::next_scheduled(&posts, at(now));
        assert_eq!(
            next("2020-01-01T00:00:00Z"),
            Some(at("2020-01-02T00:00:00Z"))
        );
        assert_eq!(
            next("2020-01-03T00:00:00Z"),
            Some(at("2020-01-05T00:00:00Z"))
        );
        assert_eq!(next("2020-01-05T00:00:00Z"), None);
        for key in ["expiry_date", "unpublishdate", "ExpiryDate"] {
            let text = format!("---\ntitle: x\ndate: 2020-01-02\n{key}: 2020-01-03\n---\n");
            let p = post("x.md", &text).unwrap();
            assert_eq!(
                p.status(at("2020-01-04T00:00:00Z")),
                PostStatus::Expired,
                "{key}"
            );
        }
    }

    #[test]
    fn status_draft_scheduled_published() {
        let now: DateTime<Utc> = "2020-01-01T00:00:00Z".parse().unwrap();
        let p = post("x.md", "---\ntitle: x\ndate: 2020-01-01\n---\n").unwrap();
        assert_eq!(p.status(now), PostStatus::Published);
        let p = post("x.md", "---\ntitle: x\ndate: 2020-01-01T00:00:01Z\n---\n").unwrap();
        assert_eq!(p.status(now), PostStatus::Scheduled);
        let p = post(
            "x.md",
            "---\ntitle: x\ndate: 2019-01-01\ndraft: true\n---\n",
        )
        .unwrap();
        assert_eq!(p.status(now), PostStatus::Draft);
    }

    #[test]
    fn drafts_and_publish_dates_of_jekyll_and_hugo_are_honoured() {
        let now: DateTime<Utc> = "2020-01-01T00:00:00Z".parse().unwrap();
        let status = |path: &str, text: &str| post(path, text).unwrap().status(now);
        // Jekyll: `published: false`, and anything under `_drafts/`.
        let jekyll = "---\ntitle: x\ndate: 2019-01-01\npublished: false\n---\n";
        assert_eq!(status("x.md", jekyll), PostStatus::Draft);
        let shown = "---\ntitle: x\ndate: 2019-01-01\npublished: \"true\"\n---\n";
        assert_eq!(status("x.md", shown), PostStatus::Published);
        let plain = "---\ntitle: x\ndate: 2019-01-01\n---\n";
        assert_eq!(status("_drafts/x.md", plain), PostStatus::Draft);
        assert_eq!(status("blog/_drafts/deep/x.md", plain), PostStatus::Draft);
        assert_eq!(status("my_drafts/x.md", plain), PostStatus::Published);
        // Hugo: `publishDate` (or `published` holding a date) after now.
        for key in ["publishDate", "publish_date", "pubdate", "published"] {
            let later = format!("---\ntitle: x\ndate: 2019-01-01\n{key}: 2020-06-01\n---\n");
            let p = post("x.md", &later).unwrap();
            assert_eq!(p.status(now), PostStatus::Scheduled, "{key}");
            assert_eq!(p.due().to_rfc3339(), "2020-06-01T00:00:00+00:00", "{key}");
            // The date, and so the permalink, stay the post's own.
            assert_eq!(p.published.to_rfc3339(), "2019-01-01T00:00:00+00:00");
            let earlier = format!("---\ntitle: x\ndate: 2019-01-01\n{key}: 2019-06-01\n---\n");
            assert_eq!(status("x.md", &earlier), PostStatus::Published, "{key}");
        }
        // Hugo reads its keys in any letter case.
        let capital = "---\ntitle: x\ndate: 2019-01-01\nDraft: true\n---\n";
        assert_eq!(status("x.md", capital), PostStatus::Draft);
        let lower = "---\ntitle: x\ndate: 2019-01-01\npublishdate: 2099-01-01\n---\n";
        assert_eq!(status("x.md", lower), PostStatus::Scheduled);
        let bad = post(
            "x.md",
            "---\ntitle: x\ndate: 2019-01-01\npublished: sometimes\n---\n",
        );
        assert!(bad.is_err());
    }
}

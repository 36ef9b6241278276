//! Atom, RSS and JSON feeds: pure functions of the site and its entries.

pub mod atom;
pub mod json;
pub mod rss;

use chrono::{DateTime, FixedOffset};
use url::Url;

use crate::config::Site;
use crate::content::Post;
use crate::html::strip_xml_illegal;
use crate::render::Rendered;

/// What a feed needs of one post, with its HTML already feed-safe.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Absolute permalink.
    pub url: String,
    /// `tag:` URI that never changes once published.
    pub id: String,
    pub title: String,
    /// The excerpt and the full post, feed-safe. The feed writers borrow or
    /// take it in turn (see [`Html`]).
    pub html: Html,
    /// The summary's visible text.
    pub summary_text: String,
    /// The post's authors, else the site's.
    pub authors: Vec<String>,
    pub tags: Vec<String>,
    pub published: DateTime<FixedOffset>,
    pub updated: DateTime<FixedOffset>,
}

impl Entry {
    /// Prepares a post whose HTML has been rendered and made feed-safe.
    pub fn new(site: &Site, post: &Post, rendered: Rendered, full_content: bool) -> Entry {
        let clean = |s: &str| strip_xml_illegal(s).into_owned();
        let authors = if post.authors.is_empty() {
            vec![clean(&site.author)]
        } else {
            post.authors.iter().map(|a| clean(a)).collect()
        };
        Entry {
            url: site.url_for(&post.permalink),
            id: entry_id(site, post),
            title: clean(&post.title),
            html: Html {
                summary: rendered.excerpt,
                // An empty post has only its summary: a blank content
                // is a validator warning and nothing to read.
                content: full_content
                    .then_some(rendered.content)
                    .filter(|content| !content.trim().is_empty()),
            },
            summary_text: rendered.excerpt_text,
            authors,
            tags: post.tags.iter().map(|t| clean(t)).collect(),
            published: post.published,
            updated: post.updated.max(post.published),
        }
    }
}

/// An entry's HTML. The Atom and RSS crates want to own their strings; a
/// full-content feed of thousands of posts holds ~100 MB of HTML, so the
/// build hands the one copy from document to document instead of cloning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Html {
    /// The excerpt.
    pub summary: String,
    /// The full post; `None` when the config asks for summaries only.
    pub content: Option<String>,
}

/// An entry's HTML, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct HtmlRef<'a> {
    pub summary: &'a str,
    pub content: Option<&'a str>,
}

impl Html {
    pub fn as_ref(&self) -> HtmlRef<'_> {
        HtmlRef {
            summary: &self.summary,
            content: self.content.as_deref(),
        }
    }
}

/// A `tag:` URI (RFC 4151) from the host, the post's date and its path: it
/// survives a title edit and a move from http to https.
pub fn entry_id(site: &Site, post: &Post) -> String {
    format!(
        "tag:{},{}:{}",
        site.host(),
        post.published.format("%Y-%m-%d"),
        post.permalink
    )
}

/// One feed's own description: its title and where each format lives.
#[derive(Debug, Clone)]
pub struct FeedInfo {
    pub title: String,
    pub description: String,
    /// The HTML page the feed stands for.
    pub home_url: String,
    pub atom_url: String,
    pub rss_url: String,
    pub json_url: String,
    /// The WebSub hub readers may subscribe through (`feeds.hub`); `None`
    /// leaves the feeds exactly as they are without one.
    pub hub_url: Option<String>,
    /// The newest entry's update time; `fallback` when there are no entries.
    pub updated: DateTime<FixedOffset>,
}

impl FeedInfo {
    /// The feed description for a set of entries; `now` dates an empty feed.
    pub fn new(
        site: &Site,
        title: String,
        paths: [&str; 3],
        hub: Option<&Url>,
        entries: &[&Entry],
        now: DateTime<FixedOffset>,
    ) -> FeedInfo {
        let [atom, rss, json] = paths;
        FeedInfo {
            title: strip_xml_illegal(&title).into_owned(),
            description: strip_xml_illegal(&site.description).into_owned(),
            home_url: site.url_for("/"),
            atom_url: site.url_for(atom),
            rss_url: site.url_for(rss),
            json_url: site.url_for(json),
            hub_url: hub.map(|h| h.as_str().to_owned()),
            updated: entries.iter().map(|e| e.updated).max().unwrap_or(now),
        }
    }
}

/// The generator name written into feeds.
pub const GENERATOR: &str = "newsletter";

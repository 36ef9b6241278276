//! Atom, RSS and JSON feeds: pure functions of the site and its entries.

pub mod atom;
pub mod json;
pub mod rss;

use chrono::{DateTime, FixedOffset};

use crate::config::Site;
use crate::content::Post;
use crate::html::strip_xml_illegal;

/// What a feed needs of one post, with its HTML already feed-safe.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Absolute permalink.
    pub url: String,
    /// `tag:` URI that never changes once published.
    pub id: String,
    pub title: String,
    pub summary_html: String,
    /// `None` when the config asks for summaries only.
    pub content_html: Option<String>,
    /// The post's authors, else the site's.
    pub authors: Vec<String>,
    pub tags: Vec<String>,
    pub published: DateTime<FixedOffset>,
    pub updated: DateTime<FixedOffset>,
}

impl Entry {
    /// Prepares a post whose HTML has been rendered and made feed-safe.
    pub fn new(
        site: &Site,
        post: &Post,
        summary_html: String,
        content_html: Option<String>,
    ) -> Entry {
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
            summary_html,
            content_html,
            authors,
            tags: post.tags.iter().map(|t| clean(t)).collect(),
            published: post.published,
            updated: post.updated.max(post.published),
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
    /// The newest entry's update time; `fallback` when there are no entries.
    pub updated: DateTime<FixedOffset>,
}

impl FeedInfo {
    /// The feed description for a set of entries; `now` dates an empty feed.
    pub fn new(
        site: &Site,
        title: String,
        paths: [&str; 3],
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
            updated: entries.iter().map(|e| e.updated).max().unwrap_or(now),
        }
    }
}

/// The generator name written into feeds.
pub const GENERATOR: &str = "newsletter";

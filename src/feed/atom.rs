//! Atom 1.0 (RFC 4287) with atom_syndication.

use atom_syndication::{
    Category, Content, Entry as AtomEntry, Feed, Generator, Link, Person, Text,
};

use std::io::{self, Write};

use super::{Entry, FeedInfo, GENERATOR, Html, HtmlRef};
use crate::config::Site;

/// The Atom document for `entries` (newest first), taking ownership of
/// their HTML (`html[i]` belongs to `entries[i]`); [`into_html`] gives it back.
pub fn document(site: &Site, info: &FeedInfo, entries: &[&Entry], html: Vec<Html>) -> Feed {
    Feed {
        id: info.atom_url.clone(),
        title: Text::plain(info.title.clone()),
        subtitle: (!info.description.is_empty()).then(|| Text::plain(info.description.clone())),
        updated: info.updated,
        authors: vec![person(&site.author)],
        links: feed_links(info),
        generator: Some(Generator {
            value: GENERATOR.into(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
        lang: Some(site.language.clone()),
        entries: entries
            .iter()
            .zip(html)
            .map(|(e, html)| entry(e, html))
            .collect(),
        ..Feed::default()
    }
}

/// Writes an Atom document.
pub fn write<W: Write>(feed: &Feed, out: W) -> io::Result<()> {
    let mut out = feed.write_to(out).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// The entries' HTML as the document holds it.
pub fn html_refs(feed: &Feed) -> Vec<HtmlRef<'_>> {
    feed.entries
        .iter()
        .map(|e| HtmlRef {
            summary: e.summary.as_ref().map_or("", |s| s.value.as_str()),
            content: e.content.as_ref().and_then(|c| c.value.as_deref()),
        })
        .collect()
}

/// Takes the entries' HTML back out of the document.
pub fn into_html(feed: Feed) -> Vec<Html> {
    feed.entries
        .into_iter()
        .map(|e| Html {
            summary: e.summary.map(|s| s.value).unwrap_or_default(),
            content: e.content.and_then(|c| c.value),
        })
        .collect()
}

fn entry(e: &Entry, html: Html) -> AtomEntry {
    AtomEntry {
        id: e.id.clone(),
        title: Text::plain(e.title.clone()),
        updated: e.updated,
        published: Some(e.published),
        authors: e.authors.iter().map(|a| person(a)).collect(),
        links: vec![link("alternate", &e.url, "text/html")],
        categories: e
            .tags
            .iter()
            .map(|t| Category {
                term: t.clone(),
                ..Category::default()
            })
            .collect(),
        summary: Some(Text::html(html.summary)),
        content: html.content.map(|content| Content {
            value: Some(content),
            content_type: Some("html".into()),
            ..Content::default()
        }),
        ..AtomEntry::default()
    }
}

/// The feed's own links: itself, its hub when there is one (WebSub §4: a
/// subscriber reads the hub and the topic, `self`, from the same feed), and
/// the site's home page.
fn feed_links(info: &FeedInfo) -> Vec<Link> {
    let mut links = vec![link("self", &info.atom_url, "application/atom+xml")];
    if let Some(hub) = &info.hub_url {
        links.push(Link {
            href: hub.clone(),
            rel: "hub".into(),
            ..Link::default()
        });
    }
    links.push(link("alternate", &info.home_url, "text/html"));
    links
}

fn person(name: &str) -> Person {
    Person {
        name: name.to_string(),
        ..Person::default()
    }
}

fn link(rel: &str, href: &str, mime: &str) -> Link {
    Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: Some(mime.to_string()),
        ..Link::default()
    }
}

//! Atom 1.0 (RFC 4287) with atom_syndication.

use atom_syndication::{
    Category, Content, Entry as AtomEntry, Feed, Generator, Link, Person, Text,
};

use std::io::{self, Write};

use super::{Entry, FeedInfo, GENERATOR};
use crate::config::Site;

/// Writes the Atom document for `entries`, newest first.
pub fn write<W: Write>(site: &Site, info: &FeedInfo, entries: &[&Entry], out: W) -> io::Result<()> {
    let feed = Feed {
        id: info.atom_url.clone(),
        title: Text::plain(info.title.clone()),
        subtitle: (!info.description.is_empty()).then(|| Text::plain(info.description.clone())),
        updated: info.updated,
        authors: vec![person(&site.author)],
        links: vec![
            link("self", &info.atom_url, "application/atom+xml"),
            link("alternate", &info.home_url, "text/html"),
        ],
        generator: Some(Generator {
            value: GENERATOR.into(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
        lang: Some(site.language.clone()),
        entries: entries.iter().map(|e| entry(e)).collect(),
        ..Feed::default()
    };
    let mut out = feed.write_to(out).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

fn entry(e: &Entry) -> AtomEntry {
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
        summary: Some(Text::html(e.summary_html.clone())),
        content: e.content_html.as_ref().map(|html| Content {
            value: Some(html.clone()),
            content_type: Some("html".into()),
            ..Content::default()
        }),
        ..AtomEntry::default()
    }
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

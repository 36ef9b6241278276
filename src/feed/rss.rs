//! RSS 2.0 with the rss crate: `content:encoded` for the full post,
//! `dc:creator` for authors (RSS's own `<author>` wants an email address).

use rss::extension::atom::{AtomExtension, Link as AtomLink};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Category, Channel, Guid, Item};

use std::io::{self, Write};

use super::{Entry, FeedInfo, GENERATOR};
use crate::config::Site;

/// Writes the RSS document for `entries`, newest first.
pub fn write<W: Write>(site: &Site, info: &FeedInfo, entries: &[&Entry], out: W) -> io::Result<()> {
    let description = if info.description.is_empty() {
        info.title.clone()
    } else {
        info.description.clone()
    };
    let channel = Channel {
        title: info.title.clone(),
        link: info.home_url.clone(),
        description,
        language: Some(site.language.clone()),
        last_build_date: Some(info.updated.to_rfc2822()),
        generator: Some(format!("{GENERATOR} {}", env!("CARGO_PKG_VERSION"))),
        atom_ext: Some(AtomExtension {
            links: vec![AtomLink {
                href: info.rss_url.clone(),
                rel: "self".into(),
                mime_type: Some("application/rss+xml".into()),
                ..AtomLink::default()
            }],
        }),
        items: entries.iter().map(|e| item(e)).collect(),
        ..Channel::default()
    };
    let mut out = channel.write_to(out).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

fn item(e: &Entry) -> Item {
    Item {
        title: Some(e.title.clone()),
        link: Some(e.url.clone()),
        description: Some(e.summary_html.clone()),
        content: e.content_html.clone(),
        pub_date: Some(e.published.to_rfc2822()),
        guid: Some(Guid {
            value: e.url.clone(),
            permalink: true,
        }),
        categories: e
            .tags
            .iter()
            .map(|t| Category {
                name: t.clone(),
                domain: None,
            })
            .collect(),
        dublin_core_ext: Some(DublinCoreExtension {
            creators: e.authors.clone(),
            ..DublinCoreExtension::default()
        }),
        ..Item::default()
    }
}

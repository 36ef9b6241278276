//! RSS 2.0 with the rss crate: `content:encoded` for the full post,
//! `dc:creator` for authors (RSS's own `<author>` wants an email address).

use rss::extension::atom::{AtomExtension, Link as AtomLink};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{Category, Channel, Guid, Item};

use std::io::{self, Write};

use super::{Entry, FeedInfo, GENERATOR, Html};
use crate::config::{RssGuid, Site};

/// The RSS document for `entries` (newest first), taking ownership of their
/// HTML (`html[i]` belongs to `entries[i]`); [`into_html`] gives it back.
pub fn document(
    site: &Site,
    info: &FeedInfo,
    guid: RssGuid,
    entries: &[&Entry],
    html: Vec<Html>,
) -> Channel {
    let description = if info.description.is_empty() {
        info.title.clone()
    } else {
        info.description.clone()
    };
    Channel {
        title: info.title.clone(),
        link: info.home_url.clone(),
        description,
        language: Some(site.language.clone()),
        last_build_date: Some(info.updated.to_rfc2822()),
        generator: Some(format!("{GENERATOR} {}", env!("CARGO_PKG_VERSION"))),
        atom_ext: Some(AtomExtension {
            links: channel_links(info),
        }),
        items: entries
            .iter()
            .zip(html)
            .map(|(e, html)| item(e, guid, html))
            .collect(),
        ..Channel::default()
    }
}

/// The channel's `atom:link`s: itself, as RSS Best Practices ask, and its
/// WebSub hub when there is one (RSS has no element of its own for either).
fn channel_links(info: &FeedInfo) -> Vec<AtomLink> {
    let mut links = vec![AtomLink {
        href: info.rss_url.clone(),
        rel: "self".into(),
        mime_type: Some("application/rss+xml".into()),
        ..AtomLink::default()
    }];
    if let Some(hub) = &info.hub_url {
        links.push(AtomLink {
            href: hub.clone(),
            rel: "hub".into(),
            ..AtomLink::default()
        });
    }
    links
}

/// Writes an RSS document.
pub fn write<W: Write>(channel: &Channel, out: W) -> io::Result<()> {
    let mut out = channel.write_to(out).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// Takes the entries' HTML back out of the document.
pub fn into_html(channel: Channel) -> Vec<Html> {
    channel
        .items
        .into_iter()
        .map(|item| Html {
            summary: item.description.unwrap_or_default(),
            content: item.content,
        })
        .collect()
}

fn item(e: &Entry, guid: RssGuid, html: Html) -> Item {
    Item {
        title: Some(e.title.clone()),
        link: Some(e.url.clone()),
        description: Some(html.summary),
        content: html.content,
        pub_date: Some(e.published.to_rfc2822()),
        // By default the entry's `tag:` id, not its permalink: a reader
        // must not see an old post as new when the site moves to https or
        // to a new path.
        guid: Some(match guid {
            RssGuid::Tag => Guid {
                value: e.id.clone(),
                permalink: false,
            },
            RssGuid::Permalink => Guid {
                value: e.url.clone(),
                permalink: true,
            },
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

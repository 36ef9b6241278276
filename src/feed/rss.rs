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
    // The channel's description is HTML to readers: the site's plain text,
    // escaped, so "<here>" is shown and not taken for a tag.
    let description = if info.description.is_empty() {
        &info.title
    } else {
        &info.description
    };
    let description = htmlize::escape_text(description).into_owned();
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

/// Writes an RSS document. The rss crate writes it into a pipe on a thread
/// of its own while this one copies it out, rewriting the references in
/// plain text on the way, so a feed of every post is never held whole.
pub fn write<W: Write>(channel: &Channel, mut out: W) -> io::Result<()> {
    if !has_references_in_plain_text(channel) {
        let mut out = channel.write_to(out).map_err(io::Error::other)?;
        return out.write_all(b"\n");
    }
    let (from_rss, to_copier) = io::pipe()?;
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let to_copier = io::BufWriter::with_capacity(64 * 1024, to_copier);
            channel
                .write_to(to_copier)
                .and_then(|w| w.into_inner().map_err(|e| e.into_error().into()))
                .map(drop)
                .map_err(io::Error::other)
        });
        // On an error here the pipe's reader is dropped, so the writer
        // stops at its next write.
        let copied = hex_references_in_plain_text(io::BufReader::new(from_rss), &mut out);
        let written = writer.join().expect("the RSS writer does not panic");
        copied.and(written)
    })?;
    out.write_all(b"\n")
}

/// Whether some plain-text element will hold `&` or `<` (most feeds have
/// none, and are written straight out).
fn has_references_in_plain_text(channel: &Channel) -> bool {
    let marked = |text: &str| text.contains(['&', '<']);
    marked(&channel.title)
        || channel.items.iter().any(|item| {
            item.title.as_deref().is_some_and(marked)
                || item.categories.iter().any(|c| marked(&c.name))
                || item
                    .dublin_core_ext
                    .as_ref()
                    .is_some_and(|dc| dc.creators.iter().any(|c| marked(c)))
        })
}

/// RSS elements that hold plain text, not HTML.
const PLAIN_TEXT: [&[u8]; 3] = [b"title", b"category", b"dc:creator"];

/// Copies the XML from `xml` to `out` with each `&amp;` and `&lt;` in a
/// plain-text element written `&#x26;` and `&#x3C;`, as the RSS Advisory
/// Board's profile (and the W3C validator) ask: a reader that takes a
/// title for HTML then still shows "Q&A" and "<here>" as written.
/// Everything else is copied as it was.
fn hex_references_in_plain_text<R: io::BufRead, W: Write>(xml: R, out: W) -> io::Result<()> {
    use quick_xml::events::{BytesText, Event};
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut writer = quick_xml::Writer::new(io::BufWriter::with_capacity(64 * 1024, out));
    let mut buffer = Vec::new();
    let mut plain = false;
    loop {
        buffer.clear();
        let event = reader
            .read_event_into(&mut buffer)
            .map_err(io::Error::other)?;
        match event {
            Event::Eof => break,
            Event::Start(ref start) => plain = PLAIN_TEXT.contains(&start.name().as_ref()),
            Event::End(_) => plain = false,
            Event::GeneralRef(ref name) if plain => {
                let reference = match &**name {
                    b"amp" => Some("&#x26;"),
                    b"lt" => Some("&#x3C;"),
                    _ => None,
                };
                if let Some(reference) = reference {
                    writer.write_event(Event::Text(BytesText::from_escaped(reference)))?;
                    continue;
                }
            }
            _ => {}
        }
        writer.write_event(event)?;
    }
    writer.into_inner().flush()
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

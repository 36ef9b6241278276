//! JSON Feed 1.1 (<https://jsonfeed.org/version/1.1>), `application/feed+json`.

use std::io::{self, Write};

use serde::Serialize;

use super::{Entry, FeedInfo, HtmlRef};
use crate::config::Site;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: &'a str,
    home_page_url: &'a str,
    feed_url: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    language: &'a str,
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    hubs: Vec<Hub<'a>>,
    items: Vec<Item<'a>>,
}

/// A hub readers may subscribe through; JSON Feed 1.1 names WebSub's type.
#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Author<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    summary: &'a str,
    content_html: &'a str,
    date_published: String,
    date_modified: String,
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tags: &'a [String],
}

/// Writes the JSON Feed document for `entries`, newest first; `html[i]` is
/// the HTML of `entries[i]`.
pub fn write<W: Write>(
    site: &Site,
    info: &FeedInfo,
    entries: &[&Entry],
    html: &[HtmlRef<'_>],
    mut out: W,
) -> io::Result<()> {
    let feed = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &info.title,
        home_page_url: &info.home_url,
        feed_url: &info.json_url,
        description: &info.description,
        language: &site.language,
        authors: vec![Author { name: &site.author }],
        hubs: info
            .hub_url
            .iter()
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .collect(),
        items: entries
            .iter()
            .zip(html)
            .map(|(e, html)| item(e, *html))
            .collect(),
    };
    serde_json::to_writer_pretty(&mut out, &feed)?;
    out.write_all(b"\n")
}

fn item<'a>(e: &'a Entry, html: HtmlRef<'a>) -> Item<'a> {
    Item {
        id: &e.id,
        url: &e.url,
        title: &e.title,
        // JSON Feed's summary is plain text; the HTML excerpt is the content
        // when the config asks for summaries only.
        summary: &e.summary_text,
        content_html: html.content.unwrap_or(html.summary),
        date_published: e.published.to_rfc3339(),
        date_modified: e.updated.to_rfc3339(),
        authors: e.authors.iter().map(|a| Author { name: a }).collect(),
        tags: &e.tags,
    }
}

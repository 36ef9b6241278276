//! Markdown → feed-safe HTML, and the excerpt that ends at `<!-- more -->`.
//!
//! The marker is looked for only in the HTML events pulldown-cmark reports,
//! so a marker inside a code block or inline code is never a split point.
//! URLs and raw HTML are made safe on the events themselves: what
//! pulldown-cmark writes from Markdown is escaped already, so only link and
//! image URLs and the raw HTML fragments need rewriting.

use std::collections::HashMap;

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

use url::Url;

use crate::config::{Config, IframePolicy};
use crate::content::{Post, Problem};
use crate::html::{
    Sanitizer, balance, escape_text, is_balanced, limit_nesting, strip_xml_illegal, to_plain_text,
};

/// About this many words make an automatic excerpt.
pub const AUTO_EXCERPT_WORDS: usize = 70;

/// A post body rendered to safe HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The whole post.
    pub content: String,
    /// The excerpt: never empty.
    pub excerpt: String,
    /// The excerpt's visible text on one line.
    pub excerpt_text: String,
}

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH
}

/// Renders Markdown to safe HTML.
pub fn markdown_to_html(markdown: &str, safe: &Sanitizer<'_>) -> String {
    let (events, raw_html) = sanitize_events(parse(markdown), safe);
    let html = push(events);
    finish(if raw_html { safe.fragment(&html) } else { html })
}

/// Renders `post` (its body read from its file) made safe for a reader of
/// its own permalink: every URL absolute against it, raw HTML sanitized,
/// iframes as `iframes` says. `prepare`, when given, is applied to the body
/// and the summary before anything reads them (the digest removes its
/// merge-token characters there). The feeds and the digest both render
/// posts through here.
pub fn render_post_safely(
    config: &Config,
    post: &Post,
    iframes: IframePolicy,
    prepare: Option<fn(&str) -> String>,
) -> Result<Rendered, Problem> {
    let page = Url::parse(&config.site.url_for(&post.permalink))
        .expect("a permalink under an absolute base URL is a URL");
    let safe = Sanitizer {
        page_url: &page,
        iframes,
    };
    let body = post.body()?;
    Ok(match prepare {
        None => render_post(&body, post.summary.as_deref(), &post.title, &safe),
        Some(prepare) => {
            let summary = post.summary.as_deref().map(prepare);
            render_post(&prepare(&body), summary.as_deref(), &post.title, &safe)
        }
    })
}

/// Renders a post body and its excerpt. `summary` (Markdown), when given, is
/// the excerpt; `title` is the last resort for a post with no text at all.
///
/// HTML from Markdown alone is safe once link and image URLs are checked,
/// which is done on the events. A post with raw HTML in it gets one more
/// pass of the sanitizer over the whole rendered HTML: only the whole shows
/// what a reader's parser will make of raw tags and the text around them.
pub fn render_post(
    body: &str,
    summary: Option<&str>,
    title: &str,
    safe: &Sanitizer<'_>,
) -> Rendered {
    let raw = parse(body);
    let marker = find_marker(&raw);
    // The raw HTML before the marker, in the event that holds the marker.
    let marker_head: Option<String> = marker.and_then(|(i, at)| match &raw[i] {
        Event::Html(text) | Event::InlineHtml(text) if !text[..at].trim().is_empty() => {
            Some(text[..at].to_string())
        }
        _ => None,
    });
    let (events, raw_html) = sanitize_events(raw, safe);
    // The head is raw HTML even when its event was only comments, which
    // sanitize_events drops without counting.
    let head_is_raw = marker_head.is_some();

    let (excerpt, excerpt_raw) = match summary {
        Some(summary) => sanitize_events(parse(summary), safe),
        None => match marker.and_then(|(i, _)| explicit_excerpt(&events[..i], marker_head)) {
            Some(excerpt) => (excerpt, raw_html || head_is_raw),
            None => (auto_excerpt(&events), raw_html),
        },
    };
    let mut excerpt_html = push(excerpt.iter().cloned());
    if excerpt_raw {
        // Cut inside raw HTML (`<div><table>` … marker … `</table></div>`),
        // the excerpt would leave those elements open in every page that
        // shows it.
        excerpt_html = safe.fragment(&excerpt_html);
        if !is_balanced(&excerpt_html) {
            excerpt_html = balance(&limit_nesting(&excerpt_html));
        }
    }
    let title = strip_xml_illegal(title);
    let (excerpt_html, excerpt_text) = if has_text_or_media(&excerpt_html) {
        // With raw HTML, only the sanitized whole shows what a reader sees:
        // the text of `<script>` or `<textarea>` is not part of it.
        let text = finish(if excerpt_raw {
            to_plain_text(&excerpt_html)
        } else {
            events_to_text(&excerpt)
        });
        // An excerpt that is only an image still needs words.
        let text = if text.is_empty() {
            title.into_owned()
        } else {
            text
        };
        (finish(excerpt_html), text)
    } else {
        (
            format!("<p>{}</p>", escape_text(&title)),
            title.into_owned(),
        )
    };
    let content = push_sized(events, body.len());
    let content = if raw_html {
        safe.fragment(&content)
    } else {
        content
    };
    Rendered {
        content: finish(content),
        excerpt: excerpt_html,
        excerpt_text,
    }
}

/// The visible text of rendered events on one line: Markdown text as it
/// reads, raw HTML through html2text, tags dropped.
fn events_to_text(events: &[Event<'_>]) -> String {
    let mut text = String::new();
    for event in events {
        match event {
            Event::Text(t) | Event::Code(t) => text.push_str(t),
            Event::Html(html) => {
                text.push(' ');
                text.push_str(&to_plain_text(html));
                text.push(' ');
            }
            Event::SoftBreak | Event::HardBreak | Event::Rule => text.push(' '),
            Event::Start(tag) if !is_inline(tag) => text.push(' '),
            Event::End(end) if !is_inline_end(end) => text.push(' '),
            _ => {}
        }
    }
    text.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_inline(tag: &Tag<'_>) -> bool {
    matches!(
        tag,
        Tag::Emphasis | Tag::Strong | Tag::Strikethrough | Tag::Link { .. } | Tag::Image { .. }
    )
}

fn is_inline_end(end: &TagEnd) -> bool {
    matches!(
        end,
        TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough | TagEnd::Link | TagEnd::Image
    )
}

fn parse(markdown: &str) -> Vec<Event<'_>> {
    merge_runs(Parser::new_ext(markdown, options()))
}

fn push<'a>(events: impl IntoIterator<Item = Event<'a>>) -> String {
    push_sized(events, 0)
}

/// Renders events into a String made big enough for `source_len` bytes of
/// Markdown, so it is not copied over and over as it grows.
fn push_sized<'a>(events: impl IntoIterator<Item = Event<'a>>, source_len: usize) -> String {
    let mut out = String::with_capacity(source_len + source_len / 4);
    html::push_html(&mut out, events.into_iter());
    out
}

/// Drops XML-illegal characters, and the spare capacity a growing String
/// leaves: feeds keep every post's HTML in memory at once.
fn finish(html: String) -> String {
    let mut html = match strip_xml_illegal(&html) {
        std::borrow::Cow::Borrowed(_) => html,
        std::borrow::Cow::Owned(clean) => clean,
    };
    if html.capacity() > html.len() + html.len() / 8 {
        html.shrink_to_fit();
    }
    html
}

/// Joins the line-by-line `Html` events of an HTML block, so a comment that
/// spans lines is seen whole, and the pieces pulldown-cmark splits text into
/// at entities and escapes, so a word is one word.
fn merge_runs<'a>(parser: Parser<'a>) -> Vec<Event<'a>> {
    let mut events: Vec<Event<'a>> = Vec::new();
    // The joined text of the run being read, when it has more than one piece.
    let mut run: Option<String> = None;
    for event in parser {
        match (&event, events.last()) {
            (Event::Html(next), Some(Event::Html(prev)))
            | (Event::Text(next), Some(Event::Text(prev))) => {
                run.get_or_insert_with(|| prev.to_string()).push_str(next);
                continue;
            }
            _ => close_run(&mut events, &mut run),
        }
        events.push(event);
    }
    close_run(&mut events, &mut run);
    events
}

fn close_run<'a>(events: &mut [Event<'a>], run: &mut Option<String>) {
    if let (Some(joined), Some(last)) = (run.take(), events.last_mut()) {
        *last = match last {
            Event::Html(_) => Event::Html(joined.into()),
            _ => Event::Text(joined.into()),
        };
    }
}

/// The event holding the first `<!-- more -->` marker and the marker's offset in it.
fn find_marker(events: &[Event<'_>]) -> Option<(usize, usize)> {
    events
        .iter()
        .enumerate()
        .find_map(|(i, event)| match event {
            Event::Html(text) | Event::InlineHtml(text) => {
                find_more_marker(text).map(|(at, _)| (i, at))
            }
            _ => None,
        })
}

/// Makes link and image URLs absolute (an unsafe one drops its link, keeping
/// the text) and footnote links absolute. Raw HTML stays for the sanitizer's
/// pass over the whole; raw HTML that is only comments is dropped here. Says
/// whether any other raw HTML is left. Start and end events stay balanced.
fn sanitize_events<'a>(mut events: Vec<Event<'a>>, safe: &Sanitizer<'_>) -> (Vec<Event<'a>>, bool) {
    let empty = || Event::Html(CowStr::Borrowed(""));
    let mut raw_html = false;
    // For each open link or image: was its start tag dropped?
    let mut dropped: Vec<bool> = Vec::new();
    let mut footnotes: HashMap<CowStr<'a>, usize> = HashMap::new();
    let page = safe.page_url.as_str();
    // In place: a post's events are many, and this runs for every post.
    for slot in events.iter_mut() {
        let event = std::mem::replace(slot, empty());
        let event = match event {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                // An email autolink's destination is the bare address; the
                // HTML writer adds `mailto:` itself.
                let url = if link_type == LinkType::Email {
                    Some(dest_url.to_string())
                } else {
                    safe.url(&dest_url, false)
                };
                dropped.push(url.is_none());
                match url {
                    Some(url) => Event::Start(Tag::Link {
                        link_type,
                        dest_url: url.into(),
                        title,
                        id,
                    }),
                    None => empty(),
                }
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let url = safe.url(&dest_url, true);
                dropped.push(url.is_none());
                match url {
                    Some(url) => Event::Start(Tag::Image {
                        link_type,
                        dest_url: url.into(),
                        title,
                        id,
                    }),
                    None => empty(),
                }
            }
            Event::End(end @ (TagEnd::Link | TagEnd::Image)) => {
                if dropped.pop().unwrap_or(false) {
                    empty()
                } else {
                    Event::End(end)
                }
            }
            Event::Html(text) | Event::InlineHtml(text) if only_comments(&text) => empty(),
            event @ (Event::Html(_) | Event::InlineHtml(_)) => {
                raw_html = true;
                event
            }
            Event::FootnoteReference(name) => {
                let next = footnotes.len() + 1;
                let number = *footnotes.entry(name.clone()).or_insert(next);
                Event::InlineHtml(
                    format!(
                        "<sup class=\"footnote-reference\"><a href=\"{}#{}\">{number}</a></sup>",
                        escape_text(page),
                        escape_text(&name)
                    )
                    .into(),
                )
            }
            Event::Start(Tag::FootnoteDefinition(name)) => {
                let next = footnotes.len() + 1;
                let number = *footnotes.entry(name.clone()).or_insert(next);
                Event::Html(
                    format!(
                        "<div class=\"footnote-definition\" id=\"{}\"><sup class=\"footnote-definition-label\">{number}</sup>\n",
                        escape_text(&name)
                    )
                    .into(),
                )
            }
            Event::End(TagEnd::FootnoteDefinition) => Event::Html("</div>\n".into()),
            other => other,
        };
        *slot = event;
    }
    (events, raw_html)
}

/// True when raw HTML is nothing but comments and whitespace.
fn only_comments(html: &str) -> bool {
    let mut rest = html.trim_start();
    while let Some(after) = rest.strip_prefix("<!--") {
        match after.find("-->") {
            Some(end) => rest = after[end + 3..].trim_start(),
            None => return false,
        }
    }
    rest.is_empty()
}

/// The position of a `<!-- more -->` comment in raw HTML: any case, any
/// whitespace inside.
pub fn find_more_marker(html: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(found) = html[from..].find("<!--") {
        let start = from + found;
        let inner = html[start + 4..].trim_start();
        if inner
            .as_bytes()
            .get(..4)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"more"))
        {
            let rest = inner[4..].trim_start();
            if rest.starts_with("-->") {
                let end = html.len() - rest.len() + 3;
                return Some((start, end));
            }
        }
        from = start + 4;
    }
    None
}

/// The excerpt from the events before the marker (and the raw HTML that
/// precedes it in its own event), with open tags closed; `None` when that is
/// only whitespace.
fn explicit_excerpt<'a>(before: &[Event<'a>], head: Option<String>) -> Option<Vec<Event<'a>>> {
    let mut open: Vec<TagEnd> = Vec::new();
    for event in before {
        match event {
            Event::Start(tag) => open.push(tag.to_end()),
            Event::End(_) => {
                open.pop();
            }
            _ => {}
        }
    }
    let mut kept: Vec<Event<'a>> = before.to_vec();
    if let Some(head) = head {
        kept.push(Event::Html(head.into()));
    }
    kept.extend(open.iter().rev().map(|end| Event::End(*end)));
    has_text_or_media(&push(kept.iter().cloned())).then_some(kept)
}

/// The leading paragraphs (lists and quotes count too), about
/// [`AUTO_EXCERPT_WORDS`] words; a longer first block is cut between words,
/// never inside a tag.
fn auto_excerpt<'a>(events: &[Event<'a>]) -> Vec<Event<'a>> {
    let mut kept: Vec<Event<'a>> = Vec::new();
    let mut words = 0;
    let mut depth = 0usize;
    let mut block: Vec<Event<'a>> = Vec::new();
    let mut block_words = 0;
    let mut eligible = false;
    for event in events {
        if depth == 0 {
            if let Event::Start(tag) = event {
                eligible = matches!(tag, Tag::Paragraph | Tag::List(_) | Tag::BlockQuote(_));
                block.clear();
                block_words = 0;
            } else {
                continue;
            }
        }
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth -= 1,
            Event::Text(t) | Event::Code(t) => block_words += count_words(t),
            _ => {}
        }
        block.push(event.clone());
        if depth == 0 && eligible && block_words > 0 {
            if words + block_words <= AUTO_EXCERPT_WORDS * 3 / 2 {
                kept.append(&mut block);
                words += block_words;
            } else if words < AUTO_EXCERPT_WORDS / 2 {
                // Too little so far for an excerpt: fill up from this block.
                kept.extend(cut_block(&block, AUTO_EXCERPT_WORDS - words));
                words = AUTO_EXCERPT_WORDS;
            } else {
                break;
            }
            if words >= AUTO_EXCERPT_WORDS {
                break;
            }
        }
    }
    kept
}

/// A block cut after `limit` words, with an ellipsis and its open tags closed.
fn cut_block<'a>(block: &[Event<'a>], limit: usize) -> Vec<Event<'a>> {
    let mut out = Vec::new();
    let mut open: Vec<TagEnd> = Vec::new();
    let mut words = 0;
    for event in block {
        match event {
            Event::Start(tag) => open.push(tag.to_end()),
            Event::End(_) => {
                open.pop();
            }
            Event::Text(text) => {
                let n = count_words(text);
                if words + n >= limit {
                    let cut = nth_word_end(text, limit - words);
                    out.push(Event::Text(format!("{}…", &text[..cut]).into()));
                    out.extend(open.iter().rev().map(|end| Event::End(*end)));
                    return out;
                }
                words += n;
            }
            Event::Code(text) => words += count_words(text),
            _ => {}
        }
        out.push(event.clone());
    }
    out
}

fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Byte offset just after the `n`th word of `text`.
fn nth_word_end(text: &str, n: usize) -> usize {
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                seen += 1;
                if seen == n {
                    return i;
                }
            }
            in_word = false;
        } else {
            in_word = true;
        }
    }
    text.len()
}

/// True when HTML has visible text, not only tags and whitespace.
fn has_text(html: &str) -> bool {
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag && !c.is_whitespace() => return true,
            _ => {}
        }
    }
    false
}

fn has_text_or_media(html: &str) -> bool {
    has_text(html) || html.contains("<img") || html.contains("<iframe")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IframePolicy;
    use url::Url;

    fn with_safe<T>(f: impl FnOnce(&Sanitizer<'_>) -> T) -> T {
        let page = Url::parse("https://example.org/blog/post/").unwrap();
        f(&Sanitizer {
            page_url: &page,
            iframes: IframePolicy::Link,
        })
    }

    fn render(body: &str, summary: Option<&str>, title: &str) -> Rendered {
        with_safe(|s| render_post(body, summary, title, s))
    }

    fn excerpt(body: &str) -> String {
        render(body, None, "Title").excerpt
    }

    #[test]
    fn marker_forms() {
        for marker in [
            "<!-- more -->",
            "<!--more-->",
            "<!--   MORE   -->",
            "<!--\tMore\n-->",
        ] {
            let body = format!("Intro text.\n\n{marker}\n\nRest of the post.");
            assert_eq!(excerpt(&body), "<p>Intro text.</p>\n", "{marker:?}");
        }
        assert_eq!(find_more_marker("a <!-- moreover --> b"), None);
    }

    #[test]
    fn inline_marker_closes_open_tags() {
        let body = "Intro *with <!-- more --> emphasis* here.";
        assert_eq!(excerpt(body), "<p>Intro <em>with </em></p>\n");
    }

    #[test]
    fn marker_in_code_is_not_a_marker() {
        let body = "Intro.\n\n```\n<!-- more -->\n```\n\nText `<!-- more -->` here.\n\n<!-- more -->\n\nRest.";
        let r = render(body, None, "T");
        assert!(
            r.excerpt.contains("<pre><code>&lt;!-- more --&gt;"),
            "{}",
            r.excerpt
        );
        assert!(
            r.excerpt.contains("<code>&lt;!-- more --&gt;</code>"),
            "{}",
            r.excerpt
        );
        assert!(!r.excerpt.contains("Rest."));
        assert!(r.content.starts_with(&r.excerpt));
    }

    #[test]
    fn explicit_excerpt_is_a_prefix_of_the_content() {
        let body = "# Heading\n\nPara one.\n\n<!-- more -->\n\nMore.";
        let r = render(body, None, "T");
        assert!(r.content.starts_with(&r.excerpt));
        assert_eq!(r.excerpt, "<h1>Heading</h1>\n<p>Para one.</p>\n");
    }

    #[test]
    fn no_marker_gives_an_automatic_excerpt() {
        let para = "word ".repeat(30);
        let body = format!("{para}\n\n{para}\n\n{para}\n\n{para}");
        let e = excerpt(&body);
        assert_eq!(e.matches("<p>").count(), 3, "{e}");
        assert!(!e.contains('…'));
    }

    #[test]
    fn marker_at_the_top_gives_an_automatic_excerpt() {
        let e = excerpt("<!-- more -->\n\nFirst paragraph.\n\nSecond.");
        assert_eq!(e, "<p>First paragraph.</p>\n<p>Second.</p>\n");
    }

    #[test]
    fn a_long_first_paragraph_is_cut_between_words_not_inside_a_tag() {
        let body = format!(
            "{}**bold {}** tail",
            "a ".repeat(60),
            vec!["b"; 60].join(" ")
        );
        let e = excerpt(&body);
        assert!(e.trim_end().ends_with("…</strong></p>"), "{e}");
        assert_eq!(e.split_whitespace().count(), AUTO_EXCERPT_WORDS);
    }

    #[test]
    fn html_and_code_blocks_are_skipped_by_the_automatic_excerpt() {
        let body = "<iframe src=\"https://x\"></iframe>\n\n```\ncode\n```\n\nThe text.";
        assert_eq!(excerpt(body), "<p>The text.</p>\n");
    }

    #[test]
    fn never_empty() {
        assert_eq!(excerpt(""), "<p>Title</p>");
        assert_eq!(render("", None, "A & B").excerpt, "<p>A &amp; B</p>");
        assert_eq!(excerpt("```\ncode only\n```"), "<p>Title</p>");
    }

    #[test]
    fn excerpt_text_is_the_visible_text() {
        let r = render(
            "Read [the *manual*](/m), then `try` it &mdash; now&nbsp;!\n\n<div>Raw &amp; <b>bold</b></div>\n\n<!-- more -->\n\nRest.",
            None,
            "T",
        );
        assert_eq!(
            r.excerpt_text,
            "Read the manual, then try it \u{2014} now\u{a0}! Raw & bold"
        );
    }

    #[test]
    fn excerpt_text_has_no_text_the_excerpt_does_not_show() {
        for raw in [
            "a <script>alert(1)</script> b",
            "a <style>p{}</style> b",
            "a <title>t</title> b",
            "a\n\n<textarea><script>alert(1)</script></textarea>\n\nb",
            "a\n\n<template><b>t</b></template>\n\nb",
            "a\n\n<noscript><p>n</p></noscript>\n\nb",
        ] {
            let r = render(&format!("{raw}\n\n<!-- more -->\n\nRest."), None, "T");
            assert_eq!(r.excerpt_text, "a b", "{raw:?}: {r:?}");
        }
    }

    #[test]
    fn summary_wins() {
        let r = render("Body.\n\n<!-- more -->\n\nx", Some("The *summary*"), "T");
        assert_eq!(r.excerpt, "<p>The <em>summary</em></p>\n");
    }

    #[test]
    fn tables_footnotes_strikethrough_and_raw_html() {
        let html = with_safe(|s| {
            markdown_to_html(
                "| a | b |\n|---|---|\n| 1 | 2 |\n\nNote[^1] ~~old~~\n\n[^1]: The note.\n\n<div class=\"x\">raw</div>\n",
                s,
            )
        });
        assert!(html.contains("<table>"));
        assert!(html.contains("<del>old</del>"));
        assert!(html.contains("footnote-definition"));
        assert!(html.contains("<div class=\"x\">raw</div>"));
    }

    #[test]
    fn markdown_links_and_images_become_absolute_or_go() {
        let html = with_safe(|s| {
            markdown_to_html(
                "[a](/docs/) [b](rel.html) ![c](/img.png) [x](javascript:alert(1)) <javascript:alert(2)> ![y](vbscript:z)",
                s,
            )
        });
        assert!(
            html.contains(r#"<a href="https://example.org/docs/">a</a>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<a href="https://example.org/blog/post/rel.html">b</a>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<img src="https://example.org/img.png" alt="c" />"#),
            "{html}"
        );
        assert!(
            !html.contains("=\"javascript") && !html.contains("vbscript"),
            "{html}"
        );
        assert!(
            html.contains(" x ") && html.contains(" y"),
            "link text stays: {html}"
        );
    }

    #[test]
    fn inline_script_is_dropped_with_its_text() {
        let html = with_safe(|s| {
            markdown_to_html("a <script>alert(1)</script> b <em onclick=\"x\">c</em>", s)
        });
        assert_eq!(html, "<p>a  b <em>c</em></p>\n");
    }

    #[test]
    fn footnote_links_are_absolute() {
        let html = with_safe(|s| markdown_to_html("Text[^n].\n\n[^n]: Note.\n", s));
        assert!(
            html.contains(r##"<a href="https://example.org/blog/post/#n">1</a>"##),
            "{html}"
        );
        assert!(html.contains(r#"<div class="footnote-definition" id="n"><sup class="footnote-definition-label">1</sup>"#), "{html}");
    }

    #[test]
    fn marker_inside_an_html_block_keeps_the_html_before_it() {
        let r = render(
            "<p>Raw intro with <a href=\"/x\">link</a></p>\n<!-- more -->\n\nRest.",
            None,
            "T",
        );
        assert_eq!(
            r.excerpt,
            "<p>Raw intro with <a href=\"https://example.org/x\">link</a></p>\n"
        );
        assert!(!r.content.contains("<!--"));
    }

    #[test]
    fn a_tag_left_open_across_blocks_cannot_take_a_handler() {
        let html =
            with_safe(|s| markdown_to_html("<details title='\n\nx' open ontoggle='alert(1)'\n", s));
        assert!(!html.contains("ontoggle"), "{html}");
        let r = render(
            "<div title='\n\nx' onmouseover='alert(1)'\n\n<!-- more -->\n\nRest",
            None,
            "T",
        );
        assert!(
            !r.excerpt.contains("onmouseover") && !r.content.contains("onmouseover"),
            "{r:?}"
        );
    }

    #[test]
    fn comments_before_the_marker_in_its_own_block_are_dropped_from_the_excerpt() {
        // The block is only comments, the last one ended by the marker's
        // `-->`, so nothing else in the post made it go through the sanitizer.
        for body in [
            "Intro.\n\n<!-- <script>alert(1)</script> <!-- more -->\n\nRest.",
            "Intro.\n\n<!-- a note --> <!-- more -->\n\nRest.",
            "<!--\n\n1. **item**\n\n```\n<!-- more -->\n```",
        ] {
            let r = render(body, None, "T");
            assert!(
                !r.excerpt.contains("<!--") && !r.excerpt.contains("script"),
                "{body:?}: {r:?}"
            );
        }
    }

    #[test]
    fn a_comment_with_multibyte_text_is_not_a_marker_and_no_panic() {
        let r = render(
            "Intro.\n\n<!-- It’s a draft note -->\n\n<!--日本語-->\n\nText.",
            None,
            "T",
        );
        assert!(r.content.contains("Text."));
        assert!(!r.content.contains("<!--"));
    }

    #[test]
    fn email_autolinks_stay_mailto() {
        let html = with_safe(|s| markdown_to_html("Mail <team@example.com>.", s));
        assert_eq!(
            html,
            "<p>Mail <a href=\"mailto:team@example.com\">team@example.com</a>.</p>\n"
        );
    }

    #[test]
    fn a_word_with_an_entity_is_one_word() {
        let body = format!(
            "{} caf&eacute; {}",
            vec!["w"; 69].join(" "),
            vec!["z"; 60].join(" ")
        );
        let e = render(&body, None, "T").excerpt;
        assert!(e.contains("café…"), "{e}");
    }

    #[test]
    fn an_image_only_excerpt_is_kept() {
        let e = render("![pic](/a.png)\n\n<!-- more -->\n\nRest.", None, "T").excerpt;
        assert_eq!(
            e,
            "<p><img src=\"https://example.org/a.png\" alt=\"pic\" /></p>\n"
        );
    }

    #[test]
    fn the_text_of_an_excerpt_without_words_is_the_title() {
        let r = render(
            "## <img src=\"/a.png\">\n\n<!-- more -->\n\nRest.",
            None,
            "A & B",
        );
        assert!(r.excerpt.contains("<img"), "{}", r.excerpt);
        assert_eq!(r.excerpt_text, "A & B");
        // With alt text, that is its text.
        let r = render("![pic](/a.png)\n\n<!-- more -->\n\nRest.", None, "T");
        assert_eq!(r.excerpt_text, "pic");
    }

    #[test]
    fn a_short_first_paragraph_is_filled_up_from_the_next() {
        let body = format!("Two words.\n\n{}", vec!["w"; 200].join(" "));
        let e = render(&body, None, "T").excerpt;
        assert_eq!(e.split_whitespace().count(), AUTO_EXCERPT_WORDS, "{e}");
        assert!(e.trim_end().ends_with("w…</p>"), "{e}");
    }
}

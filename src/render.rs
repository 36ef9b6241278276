//! Markdown → HTML, and the excerpt that ends at `<!-- more -->`.
//!
//! The marker is looked for only in the HTML events pulldown-cmark reports,
//! so a marker inside a code block or inline code is never a split point.

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

/// About this many words make an automatic excerpt.
pub const AUTO_EXCERPT_WORDS: usize = 70;

/// A post body rendered to HTML, before any URL rewriting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The whole post.
    pub content: String,
    /// The excerpt: never empty.
    pub excerpt: String,
}

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH
}

/// Renders Markdown to HTML.
pub fn markdown_to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + markdown.len() / 4);
    html::push_html(&mut out, Parser::new_ext(markdown, options()));
    out
}

/// Renders a post body and its excerpt. `summary` (Markdown), when given, is
/// the excerpt; `title` is the last resort for a post with no text at all.
pub fn render_post(body: &str, summary: Option<&str>, title: &str) -> Rendered {
    let events = merge_html_runs(Parser::new_ext(body, options()));
    let mut content = String::with_capacity(body.len() + body.len() / 4);
    html::push_html(&mut content, events.iter().cloned());

    let excerpt = match summary {
        Some(summary) => markdown_to_html(summary),
        None => explicit_excerpt(&events).unwrap_or_else(|| auto_excerpt(&events)),
    };
    let excerpt = if has_text(&excerpt) {
        excerpt
    } else {
        format!("<p>{}</p>", escape_text(title))
    };
    Rendered { content, excerpt }
}

/// Joins the line-by-line `Html` events of an HTML block, so a comment that
/// spans lines is seen whole.
fn merge_html_runs<'a>(parser: Parser<'a>) -> Vec<Event<'a>> {
    let mut events: Vec<Event<'a>> = Vec::new();
    for event in parser {
        if let (Event::Html(next), Some(Event::Html(prev))) = (&event, events.last_mut()) {
            *prev = format!("{prev}{next}").into();
            continue;
        }
        events.push(event);
    }
    events
}

/// The position of a `<!-- more -->` comment in raw HTML: any case, any
/// whitespace inside.
pub fn find_more_marker(html: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(found) = html[from..].find("<!--") {
        let start = from + found;
        let inner = html[start + 4..].trim_start();
        if inner.len() >= 4 && inner[..4].eq_ignore_ascii_case("more") {
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

/// The HTML before the first marker, with open tags closed; `None` when
/// there is no marker or nothing but whitespace before it.
fn explicit_excerpt(events: &[Event<'_>]) -> Option<String> {
    let mut open: Vec<TagEnd> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::Start(tag) => open.push(tag.to_end()),
            Event::End(_) => {
                open.pop();
            }
            Event::Html(text) | Event::InlineHtml(text) => {
                if let Some((at, _)) = find_more_marker(text) {
                    let mut kept: Vec<Event<'_>> = events[..i].to_vec();
                    if !text[..at].trim().is_empty() {
                        kept.push(Event::Html(text[..at].to_string().into()));
                    }
                    kept.extend(open.iter().rev().map(|end| Event::End(*end)));
                    let mut out = String::new();
                    html::push_html(&mut out, kept.into_iter());
                    return has_text_or_media(&out).then_some(out);
                }
            }
            _ => {}
        }
    }
    None
}

/// The leading paragraphs (lists and quotes count too), about
/// [`AUTO_EXCERPT_WORDS`] words; a longer first block is cut between words,
/// never inside a tag.
fn auto_excerpt(events: &[Event<'_>]) -> String {
    let mut kept: Vec<Event<'_>> = Vec::new();
    let mut words = 0;
    let mut depth = 0usize;
    let mut block: Vec<Event<'_>> = Vec::new();
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
            } else if words == 0 {
                kept.extend(cut_block(&block, AUTO_EXCERPT_WORDS));
                words = AUTO_EXCERPT_WORDS;
            } else {
                break;
            }
            if words >= AUTO_EXCERPT_WORDS {
                break;
            }
        }
    }
    let mut out = String::new();
    html::push_html(&mut out, kept.into_iter());
    out
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

/// Escapes text for HTML element content.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    pulldown_cmark_escape::escape_html(&mut out, text).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excerpt(body: &str) -> String {
        render_post(body, None, "Title").excerpt
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
        let r = render_post(body, None, "T");
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
        let r = render_post(body, None, "T");
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
        assert_eq!(render_post("", None, "A & B").excerpt, "<p>A &amp; B</p>");
        assert_eq!(excerpt("```\ncode only\n```"), "<p>Title</p>");
    }

    #[test]
    fn summary_wins() {
        let r = render_post("Body.\n\n<!-- more -->\n\nx", Some("The *summary*"), "T");
        assert_eq!(r.excerpt, "<p>The <em>summary</em></p>\n");
    }

    #[test]
    fn tables_footnotes_strikethrough_and_raw_html() {
        let html = markdown_to_html(
            "| a | b |\n|---|---|\n| 1 | 2 |\n\nNote[^1] ~~old~~\n\n[^1]: The note.\n\n<div class=\"x\">raw</div>\n",
        );
        assert!(html.contains("<table>"));
        assert!(html.contains("<del>old</del>"));
        assert!(html.contains("footnote-definition"));
        assert!(html.contains("<div class=\"x\">raw</div>"));
    }
}

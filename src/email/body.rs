//! A post's excerpt made for mail clients (HTML and plain text), and the
//! finishing of a rendered digest: CSS inlined into `style` attributes,
//! plain text tidied.

use std::cell::Cell;
use std::rc::Rc;

use lol_html::html_content::ContentType;
use lol_html::{RewriteStrSettings, element, end_tag, rewrite_str};

use super::merge::clean;
use crate::config::{Config, IframePolicy};
use crate::content::{Post, Problem};
use crate::html::{self, escape_text, limit_nesting};
use crate::render::render_post_safely;
use crate::text::{TEXT_WIDTH, wrap};

/// The post's excerpt made for email: (HTML, plain text).
pub fn email_excerpt(config: &Config, post: &Post) -> Result<(String, String), Problem> {
    for_mail(config, post, false)
}

/// The whole post made for email, as a letter sends it: (HTML, plain text).
pub fn email_letter(config: &Config, post: &Post) -> Result<(String, String), Problem> {
    for_mail(config, post, true)
}

fn for_mail(config: &Config, post: &Post, whole: bool) -> Result<(String, String), Problem> {
    // The merge-token delimiters go from the source, before the sanitizer
    // reads it: dropped from its output, they could join `o\u{E000}nclick`
    // into an attribute it never saw. (Removed again below from what
    // Markdown entities decode to, which is escaped text by then.)
    let rendered = render_post_safely(config, post, IframePolicy::Link, Some(clean))?;
    let image_alt = format!("Image from “{}”", clean(&post.title));
    let part = if whole {
        &rendered.content
    } else {
        &rendered.excerpt
    };
    let excerpt = clean(part);
    let html = html::balance(&for_email(&limit_nesting(&excerpt), &image_alt));
    let text = wrap(&html_to_text(&html), TEXT_WIDTH);
    Ok((html, text))
}

/// Rewrites feed-safe excerpt HTML for mail clients, which drop embeds:
/// the YouTube thumbnail link the sanitizer makes of an embed becomes a
/// linked "▶ Watch the video" line, a `<video>` or `<audio>` with a source
/// a link to it, and an image with no alt text gets `image_alt`, so a
/// reader whose client blocks images still knows one is there.
fn for_email(html: &str, image_alt: &str) -> String {
    const YOUTUBE_LINK: &str = r#"a[href^="https://www.youtube.com/watch?v="]"#;
    const THUMBNAIL: &str =
        r#"a[href^="https://www.youtube.com/watch?v="] > img[src^="https://i.ytimg.com/vi/"]"#;

    // First pass: which YouTube links hold a thumbnail.
    let holds_thumbnail: Rc<std::cell::RefCell<Vec<bool>>> = Rc::default();
    let (links, thumbs) = (holds_thumbnail.clone(), holds_thumbnail.clone());
    let first = RewriteStrSettings::new()
        .with_strict(false)
        .append_element_content_handler(element!(YOUTUBE_LINK, move |_| {
            links.borrow_mut().push(false);
            Ok(())
        }))
        .append_element_content_handler(element!(THUMBNAIL, move |_| {
            if let Some(last) = thumbs.borrow_mut().last_mut() {
                *last = true;
            }
            Ok(())
        }));
    if rewrite_str(html, first).is_err() {
        return escape_text(html);
    }
    let holds_thumbnail = holds_thumbnail.take();

    // Second pass: rewrite. A video line is a paragraph of its own unless
    // it already is inside one.
    let paragraphs = Rc::new(Cell::new(0usize));
    let in_paragraph = paragraphs.clone();
    let next_link = Cell::new(0usize);
    let second = RewriteStrSettings::new()
        .with_strict(false)
        .append_element_content_handler(element!("p", move |el| {
            paragraphs.set(paragraphs.get() + 1);
            let paragraphs = paragraphs.clone();
            if let Some(handlers) = el.end_tag_handlers() {
                handlers.push(end_tag!(move |_| {
                    paragraphs.set(paragraphs.get().saturating_sub(1));
                    Ok(())
                }));
            }
            Ok(())
        }))
        .append_element_content_handler(element!(YOUTUBE_LINK, |el| {
            let index = next_link.get();
            next_link.set(index + 1);
            if holds_thumbnail.get(index) == Some(&true) && in_paragraph.get() == 0 {
                el.before("<p class=\"video\">", ContentType::Html);
                el.after("</p>", ContentType::Html);
            }
            Ok(())
        }))
        .append_element_content_handler(element!(THUMBNAIL, |el| {
            let alt = html::attribute(el, "alt")
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(|| "Watch the video".into());
            el.replace(&format!("▶ {}", escape_text(&alt)), ContentType::Html);
            Ok(())
        }))
        .append_element_content_handler(element!("img", |el| {
            if html::attribute(el, "alt").is_none_or(|a| a.trim().is_empty()) {
                el.set_attribute("alt", &html::escape_text(image_alt))?;
            }
            if let Some(style) = html::attribute(el, "style")
                && let Some(fixed) = keep_aspect_ratio(&style, el.has_attribute("width"))
            {
                el.set_attribute("style", &html::escape_text(&fixed))?;
            }
            Ok(())
        }))
        .append_element_content_handler(element!("video[src], audio[src]", |el| {
            let src = html::attribute(el, "src").unwrap_or_default();
            let what = if el.tag_name().eq_ignore_ascii_case("audio") {
                "▶ Listen to the audio"
            } else {
                "▶ Watch the video"
            };
            el.replace(
                &format!("<a href=\"{}\">{what}</a>", html::escape_text(&src)),
                ContentType::Html,
            );
            Ok(())
        }));
    rewrite_str(html, second).unwrap_or_else(|_| escape_text(html))
}

/// An image's `style` with its height made `auto` when its width is set
/// too (in the style or a `width` attribute): the digest's CSS caps an
/// image's width at the screen's (`max-width: 100%`), and a fixed height
/// would then squash it on a phone. `None` when nothing needs to change.
fn keep_aspect_ratio(style: &str, width_attribute: bool) -> Option<String> {
    let declarations: Vec<(String, &str)> = style
        .split(';')
        .filter_map(|d| d.split_once(':'))
        .map(|(property, value)| (property.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    let has = |name: &str| declarations.iter().any(|(p, _)| p == name);
    let fixed_height = declarations
        .iter()
        .any(|(p, v)| p == "height" && !v.eq_ignore_ascii_case("auto"));
    if !fixed_height || !(has("width") || width_attribute) {
        return None;
    }
    let mut kept: Vec<String> = declarations
        .iter()
        .filter(|(p, _)| p != "height")
        .map(|(p, v)| format!("{p}: {v}"))
        .collect();
    kept.push("height: auto".into());
    Some(kept.join("; "))
}

/// Inlines the `<style>` rules into `style` attributes; the `<style>`
/// blocks and any `<script>` go.
pub fn inline_css(html: &str) -> Result<String, String> {
    let inlined = css_inline::CSSInliner::options()
        .keep_style_tags(false)
        .keep_link_tags(false)
        .load_remote_stylesheets(false)
        .build()
        .inline(html)
        .map_err(|e| format!("cannot inline its CSS: {e}"))?;
    let settings = RewriteStrSettings::new()
        .with_strict(false)
        .append_element_content_handler(element!("script, style", |el| {
            el.remove();
            Ok(())
        }));
    rewrite_str(&inlined, settings).map_err(|e| format!("cannot rewrite its HTML: {e}"))
}

/// Readable plain text of email HTML: paragraphs apart, lists with `*`,
/// quotes with `>`, links as `[1]` footnotes after the text. Not wrapped.
fn html_to_text(html: &str) -> String {
    let text = html2text::config::plain()
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), 100_000)
        .unwrap_or_else(|_| crate::html::to_plain_text(html));
    let text = text
        .lines()
        .map(|line| plain_heading(line.trim_end()))
        .collect::<Vec<_>>()
        .join("\n");
    merge_link_notes(&unwrap_linked_images(text.trim()))
}

/// A heading without html2text's Markdown marks: `## Title` → `Title`.
fn plain_heading(line: &str) -> &str {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
        line[hashes..].trim_start()
    } else {
        line
    }
}

/// A linked image as its link's text: html2text writes the image's alt
/// text in brackets inside the link's (`[[A logo]][3]`); one pair goes.
fn unwrap_linked_images(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("]][") {
            Some(end) if !after[..end].contains(['[', ']', '\n']) => {
                out.push('[');
                out.push_str(&after[..end]);
                out.push_str("][");
                rest = &after[end + 3..];
            }
            _ => {
                out.push_str("[[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One link note per URL: html2text numbers every link, so a URL linked
/// twice got two notes. References to a later note of the same URL take
/// the first one's number, and the notes are numbered again in order.
fn merge_link_notes(text: &str) -> String {
    let Some(start) = text.find("\n\n[1]: ") else {
        return text.to_string();
    };
    let (body, notes) = text.split_at(start);
    let mut urls: Vec<&str> = Vec::new();
    // Old note number → new one.
    let mut renumber = std::collections::HashMap::new();
    for line in notes.trim().lines() {
        let Some((number, url)) = line
            .strip_prefix('[')
            .and_then(|l| l.split_once("]: "))
            .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        else {
            // Not the notes html2text writes: leave the text as it is.
            return text.to_string();
        };
        let new = match urls.iter().position(|u| *u == url) {
            Some(i) => i + 1,
            None => {
                urls.push(url);
                urls.len()
            }
        };
        renumber.insert(number.to_string(), new);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = body;
    while let Some(open) = rest.find("][") {
        let after = &rest[open + 2..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match renumber.get(&after[..digits]) {
            Some(new) if digits > 0 && after[digits..].starts_with(']') => {
                out.push_str(&rest[..open]);
                out.push_str(&format!("][{new}]"));
                rest = &after[digits + 1..];
            }
            _ => {
                out.push_str(&rest[..open + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.push_str("\n\n");
    for (i, url) in urls.iter().enumerate() {
        out.push_str(&format!("[{}]: {url}\n", i + 1));
    }
    out.trim_end().to_string()
}

/// Template output made tidy: no trailing spaces (but the `-- ` signature
/// line), at most one blank line in a row, one final newline.
pub fn tidy_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = true;
    for line in text.lines() {
        let line = if line == "-- " { line } else { line.trim_end() };
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
        blank = false;
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_part_has_plain_headings_one_note_per_url_and_no_nested_brackets() {
        let html = "<h2>A heading</h2><p>See <a href=\"https://example.org/docs\">the docs</a> and <a href=\"https://example.org/docs\">the docs again</a>.</p><p><a href=\"https://example.org/home\"><img src=\"https://example.org/logo.png\" alt=\"A logo\"></a> and <a href=\"https://example.org/x\">x</a></p>";
        let text = html_to_text(html);
        assert_eq!(
            text,
            "A heading\n\nSee [the docs][1] and [the docs again][1].\n\n[A logo][2] and [x][3]\n\n[1]: https://example.org/docs\n[2]: https://example.org/home\n[3]: https://example.org/x"
        );
        // Text without notes, or with brackets of its own, stays as it is.
        assert_eq!(html_to_text("<p>a [[b]] c</p>"), "a [[b]] c");
        assert_eq!(plain_heading("#hashtag"), "#hashtag");
    }
}

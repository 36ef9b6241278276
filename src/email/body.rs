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
    // The merge-token delimiters go from the source, before the sanitizer
    // reads it: dropped from its output, they could join `o\u{E000}nclick`
    // into an attribute it never saw. (Removed again below from what
    // Markdown entities decode to, which is escaped text by then.)
    let rendered = render_post_safely(config, post, IframePolicy::Link, Some(clean))?;
    let image_alt = format!("Image from “{}”", clean(&post.title));
    let excerpt = clean(&rendered.excerpt);
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
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
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

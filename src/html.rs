//! Post HTML made safe for feeds: absolute URLs, no scripts or event
//! handlers, iframes turned into links. One pass of lol_html does it all.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use html2text::render::TrivialDecorator;
use lol_html::html_content::{ContentType, Element};
use lol_html::{RewriteStrSettings, doc_comments, doc_text, element, end_tag, rewrite_str};

use url::Url;

use crate::config::IframePolicy;

/// Attributes that hold one URL.
const URL_ATTRIBUTES: [&str; 16] = [
    "href",
    "src",
    "poster",
    "cite",
    "action",
    "formaction",
    "background",
    "longdesc",
    "xlink:href",
    "data",
    "codebase",
    "manifest",
    "icon",
    "dynsrc",
    "lowsrc",
    "usemap",
];

/// Attributes dropped whatever their value: they run or load other documents.
const DROPPED_ATTRIBUTES: [&str; 4] = ["srcdoc", "ping", "http-equiv", "xmlns:xlink"];

/// Elements dropped with everything inside them: scripts and styles, plugins
/// and frames, document-level elements, raw-text elements whose content a
/// reader would parse differently, and SVG animation that can set an href.
const DROPPED: [&str; 25] = [
    "script",
    "style",
    "object",
    "embed",
    "applet",
    "frame",
    "frameset",
    "base",
    "meta",
    "link",
    "title",
    "head",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
    "xmp",
    "template",
    "textarea",
    "set",
    "animate",
    "animatemotion",
    "animatetransform",
    "animatecolor",
    "handler",
];

/// Makes post HTML safe for feeds: URLs absolute against the post's page,
/// no scripts or event handlers, iframes handled by the policy.
#[derive(Debug, Clone, Copy)]
pub struct Sanitizer<'a> {
    pub page_url: &'a Url,
    pub iframes: IframePolicy,
}

impl Sanitizer<'_> {
    /// A URL from the post made absolute; `None` when it must go.
    pub fn url(&self, value: &str, image: bool) -> Option<String> {
        absolute_url(value, self.page_url, image)
    }

    /// Rewrites HTML with lol_html. It must see a whole document fragment as
    /// a reader will (not pieces of one), or a tag left open in one piece
    /// could take attributes from the next. Comments are dropped too.
    ///
    /// Characters XML forbids are dropped before lol_html parses the
    /// fragment, never after: dropped from its output, the NULs of
    /// `<\0script>` (text to a parser) would join into a `<script>` tag.
    pub fn fragment(&self, html: &str) -> String {
        let html = &*strip_xml_illegal(html);
        let page_url = self.page_url;
        let iframes = self.iframes;
        let settings = RewriteStrSettings::new()
            .with_strict(false)
            .append_element_content_handler(element!("*", |el| {
                let name = el.tag_name().to_ascii_lowercase();
                if DROPPED.contains(&name.as_str()) {
                    el.remove();
                    return Ok(());
                }
                if !el.attributes().is_empty() {
                    clean_attributes(el, page_url);
                }
                if name == "iframe" && iframes == IframePolicy::Link {
                    replace_iframe(el);
                }
                Ok(())
            }))
            .append_document_content_handler(doc_comments!(|c| {
                c.remove();
                Ok(())
            }))
            // A `<` that reached text is not a tag to a parser, but with a
            // comment or element after it removed it would start one:
            // `<<!-- -->details open ontoggle=...>`. Escaped, it never can.
            .append_document_content_handler(doc_text!(|t| {
                if t.as_str().contains('<') {
                    let escaped = t.as_str().replace('<', "&lt;");
                    t.replace(&escaped, ContentType::Html);
                }
                Ok(())
            }));
        rewrite_str(html, settings).unwrap_or_else(|_| escape_text(html))
    }
}

fn clean_attributes(el: &mut Element<'_, '_>, page_url: &Url) {
    let names: Vec<String> = el.attributes().iter().map(|a| a.name()).collect();
    for name in names {
        let lower = name.to_ascii_lowercase();
        let unsafe_style = lower == "style" && !safe_style(el, &name);
        if lower.starts_with("on") || unsafe_style || DROPPED_ATTRIBUTES.contains(&lower.as_str()) {
            el.remove_attribute(&name);
            continue;
        }
        let Some(raw) = el.get_attribute(&name) else {
            continue;
        };
        let value = decode_attribute(&raw);
        let rewritten = if URL_ATTRIBUTES.contains(&lower.as_str()) {
            absolute_url(&value, page_url, is_image_source(el, &lower))
        } else if lower == "srcset" {
            absolute_srcset(&value, page_url)
        } else {
            continue;
        };
        match rewritten {
            Some(url) => {
                let encoded = escape_text(&url);
                if encoded != raw {
                    let _ = el.set_attribute(&name, &encoded);
                }
            }
            None => el.remove_attribute(&name),
        }
    }
}

/// An attribute's value as a browser reads it: lol_html hands it over as
/// written, character references and all (`href="&#x2F;docs"` is `/docs`).
pub fn attribute(el: &Element<'_, '_>, name: &str) -> Option<String> {
    el.get_attribute(name)
        .map(|raw| decode_attribute(&raw).into_owned())
}

fn decode_attribute(raw: &str) -> Cow<'_, str> {
    if raw.contains('&') {
        htmlize::unescape_attribute(raw)
    } else {
        Cow::Borrowed(raw)
    }
}

/// Inline styles stay only when they are plain declarations without URLs or
/// expressions, which is what feed readers accept.
fn safe_style(el: &Element<'_, '_>, name: &str) -> bool {
    let value = attribute(el, name).unwrap_or_default().to_ascii_lowercase();
    !value.contains("url(")
        && !value.contains("expression")
        && !value.contains("javascript")
        && !value.contains('\\')
        && !value.contains("/*")
}

fn is_image_source(el: &Element<'_, '_>, attr: &str) -> bool {
    attr == "src" && matches!(el.tag_name().as_str(), "img" | "source")
}

/// `value` resolved against the page; `None` when it must go (scripts, or
/// not a URL at all). Protocol-relative URLs become https.
pub fn absolute_url(value: &str, page_url: &Url, image: bool) -> Option<String> {
    let trimmed = value.trim();
    let url = if let Some(rest) = trimmed.strip_prefix("//") {
        Url::parse(&format!("https://{rest}")).ok()?
    } else {
        page_url.join(trimmed).ok()?
    };
    match url.scheme() {
        "http" | "https" | "mailto" | "tel" | "ftp" | "ftps" | "sftp" | "irc" | "ircs" | "xmpp"
        | "news" | "gopher" | "magnet" | "geo" | "sms" => Some(url.into()),
        // Media types are case-insensitive: `image/sVg+xml` is SVG too.
        "data"
            if image && {
                let media = url.path().to_ascii_lowercase();
                media.starts_with("image/") && !media.starts_with("image/svg")
            } =>
        {
            Some(url.into())
        }
        _ => None,
    }
}

/// A `srcset` list with each candidate's URL made absolute. It is read as
/// browsers read it (WHATWG, "parse a srcset attribute"): a URL runs to the
/// next white space, commas and all (image CDNs write `w_400,h_300` in
/// paths), and a comma outside parentheses after its descriptors ends it.
fn absolute_srcset(value: &str, page_url: &Url) -> Option<String> {
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let (mut url, after) = rest.split_at(end);
        rest = after;
        let mut descriptors = String::new();
        if url.ends_with(',') {
            url = url.trim_end_matches(',');
        } else {
            let mut in_parens = false;
            let stop = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => in_parens = true,
                        ')' => in_parens = false,
                        _ => {}
                    }
                    c == ',' && !in_parens
                })
                .map_or(rest.len(), |(i, _)| i);
            descriptors = rest[..stop]
                .split_ascii_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            rest = &rest[stop..];
        }
        let url = absolute_url(url, page_url, true)?;
        out.push(if descriptors.is_empty() {
            url
        } else {
            format!("{url} {descriptors}")
        });
    }
    Some(out.join(", "))
}

/// Replaces an iframe by a link to what it showed; a YouTube embed becomes
/// its watch page with the video's thumbnail.
fn replace_iframe(el: &mut Element<'_, '_>) {
    let Some(src) = attribute(el, "src") else {
        el.remove();
        return;
    };
    let title =
        attribute(el, "title").filter(|t| !t.trim().is_empty() && t != "YouTube video player");
    let replacement = match youtube_id(&src) {
        Some(id) => {
            let alt = match &title {
                Some(t) => format!("Watch the video: {t}"),
                None => "Watch the video on YouTube".into(),
            };
            format!(
                "<a href=\"https://www.youtube.com/watch?v={id}\"><img src=\"https://i.ytimg.com/vi/{id}/hqdefault.jpg\" alt=\"{}\" width=\"480\" height=\"360\"></a>",
                escape_text(&alt)
            )
        }
        None => {
            let text = title.unwrap_or_else(|| src.clone());
            format!(
                "<a href=\"{}\">{}</a>",
                escape_text(&src),
                escape_text(&text)
            )
        }
    };
    el.replace(&replacement, ContentType::Html);
}

/// The video id of a YouTube embed URL (`/embed/ID`, on youtube.com or youtube-nocookie.com).
pub fn youtube_id(src: &str) -> Option<String> {
    let url = Url::parse(src).ok()?;
    let host = url.host_str()?.trim_start_matches("www.");
    if !matches!(
        host,
        "youtube.com" | "youtube-nocookie.com" | "m.youtube.com"
    ) {
        return None;
    }
    let id = url.path().strip_prefix("/embed/")?;
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| id.to_string())
}

/// Escapes text for HTML: element content and quoted attribute values
/// alike (`&`, `<`, `>`, `"` and `'`).
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    pulldown_cmark_escape::escape_html(&mut out, text).expect("writing to a String cannot fail");
    out
}

/// True when every element of sanitized `html` that needs an end tag has
/// one and no end tag is left over: then [`balance`], which costs a parse
/// into a tree, is not needed. (Sanitized HTML has no comments, scripts or
/// raw `<` in text, so its `</` are all end tags.)
pub fn is_balanced(html: &str) -> bool {
    let opened = Rc::new(std::cell::Cell::new(0usize));
    let closed = Rc::new(std::cell::Cell::new(0usize));
    let (o, c) = (opened.clone(), closed.clone());
    let settings = RewriteStrSettings::new()
        .with_strict(false)
        .append_element_content_handler(element!("*", move |el| {
            if let Some(handlers) = el.end_tag_handlers() {
                o.set(o.get() + 1);
                let c = c.clone();
                handlers.push(end_tag!(move |_| {
                    c.set(c.get() + 1);
                    Ok(())
                }));
            }
            Ok(())
        }));
    if rewrite_str(html, settings).is_err() {
        return false;
    }
    let end_tags = html
        .match_indices("</")
        .filter(|(at, _)| {
            html[at + 2..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
        })
        .count();
    opened.get() == closed.get() && closed.get() == end_tags
}

/// The fragment parsed as a browser would and written out again, so tags
/// it leaves open are closed and stray end tags dropped: an excerpt cut
/// inside raw HTML can never close or open elements of the page (or the
/// mail template) around it.
pub fn balance(html: &str) -> String {
    css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .build()
        .inline_fragment(html, "")
        .unwrap_or_else(|_| escape_text(html))
}

/// The visible text of an HTML fragment on one line: entities decoded,
/// tags and layout whitespace gone.
pub fn to_plain_text(html: &str) -> String {
    let html = limit_nesting(html);
    let text = html2text::config::with_decorator(TrivialDecorator::new())
        .raw_mode(true)
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), 100_000)
        .unwrap_or_else(|_| html.to_string());
    // No-break spaces stay: the author put them there.
    text.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// How deep elements may nest in HTML given to html5ever (through html2text
/// and css-inline). Its tree builder scans the open elements at each start
/// tag, so deep nesting costs time quadratic in the depth (40,000 levels:
/// minutes), and html2text and the serialiser recurse once per level.
/// Chromium's parser stops nesting at 512 too.
pub const MAX_NESTING: usize = 512;

/// Elements whose end tag may be left out: the next one of them closes the
/// one before (`<li>a<li>b` are siblings), so a run of them is not nesting.
const OPTIONAL_END: [&str; 12] = [
    "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "rb", "rt", "rp",
];

/// HTML whose elements nest at most [`MAX_NESTING`] deep: deeper elements
/// lose their tags and keep their content (those [`Sanitizer::fragment`]
/// drops lose their content too, as they would have).
pub fn limit_nesting(html: &str) -> Cow<'_, str> {
    // Fewer tags than the limit cannot nest deeper than it.
    if html.bytes().filter(|&b| b == b'<').count() <= MAX_NESTING {
        return Cow::Borrowed(html);
    }
    // The names of the open elements, as a browser would mostly see them:
    // an end tag closes its element and the children left open in it
    // (`<div><b>x</div>`), and an element with an optional end tag closes an
    // open sibling of the same kind.
    let open: Rc<RefCell<Vec<String>>> = Rc::default();
    let settings = RewriteStrSettings::new()
        .with_strict(false)
        .append_element_content_handler(element!("*", |el| {
            if !el.can_have_content() {
                return Ok(());
            }
            let name = el.tag_name().to_ascii_lowercase();
            let depth = {
                let mut open = open.borrow_mut();
                if OPTIONAL_END.contains(&name.as_str()) && open.last() == Some(&name) {
                    open.pop();
                }
                if DROPPED.contains(&name.as_str()) && open.len() >= MAX_NESTING {
                    el.remove();
                } else if open.len() >= MAX_NESTING {
                    el.remove_and_keep_content();
                }
                open.push(name);
                open.len()
            };
            if let Some(handlers) = el.end_tag_handlers() {
                let open = open.clone();
                handlers.push(end_tag!(move |_| {
                    open.borrow_mut().truncate(depth - 1);
                    Ok(())
                }));
            }
            Ok(())
        }));
    match rewrite_str(html, settings) {
        Ok(limited) => Cow::Owned(limited),
        Err(_) => Cow::Owned(escape_text(html)),
    }
}

/// Drops characters XML 1.0 forbids (C0 controls but tab, LF, CR; U+FFFE/U+FFFF).
pub fn strip_xml_illegal(text: &str) -> Cow<'_, str> {
    let illegal = |c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    // A byte scan first: each illegal character is a C0 byte or starts with 0xEF.
    // (Folded per chunk without an early exit, which the compiler vectorises.)
    let suspect = text.as_bytes().chunks(4096).any(|chunk| {
        chunk.iter().fold(false, |found, &b| {
            found | (b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r') | (b == 0xEF)
        })
    });
    if suspect && text.contains(illegal) {
        Cow::Owned(text.chars().filter(|&c| !illegal(c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(html: &str) -> String {
        let page = Url::parse("https://prometheus.io/blog/2017/09/04/post/").unwrap();
        Sanitizer {
            page_url: &page,
            iframes: IframePolicy::Link,
        }
        .fragment(html)
    }

    #[test]
    fn deep_nesting_is_flattened_below_the_limit_and_keeps_its_text() {
        let deep = format!(
            "{}<script>x()</script>text{}",
            "<div>".repeat(600),
            "</div>".repeat(600)
        );
        let limited = limit_nesting(&deep);
        assert_eq!(limited.matches("<div>").count(), MAX_NESTING);
        assert_eq!(limited.matches("</div>").count(), MAX_NESTING);
        assert!(
            limited.contains("text") && !limited.contains("x()"),
            "{limited}"
        );
        // Siblings, void elements and children closed with their parent are not nesting.
        for flat in [
            "<p>a".repeat(1000),
            "<li>a".repeat(1000),
            "<div><b>x</div>".repeat(1000),
            "<br><img src=x>".repeat(1000),
            "<div>x</div>".repeat(1000),
        ] {
            assert_eq!(limit_nesting(&flat), flat);
        }
    }

    #[test]
    fn plain_text_of_deeply_nested_html_is_quick_and_whole() {
        // html5ever's tree building was quadratic in the depth: 40,000
        // nested divs took minutes.
        let started = std::time::Instant::now();
        for html in [
            format!("{}text", "<div>".repeat(50_000)),
            format!(
                "{}deep{}",
                "<blockquote><em>".repeat(25_000),
                "</em></blockquote>".repeat(25_000)
            ),
        ] {
            // In a thread with the stack rayon's workers have.
            let text = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || to_plain_text(&html))
                .unwrap()
                .join()
                .unwrap();
            assert!(text == "text" || text == "deep", "{text}");
        }
        assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    }

    #[test]
    fn svg_data_images_go_whatever_the_case_of_their_type() {
        for kind in ["image/svg+xml", "image/sVg+xml", "IMAGE/SVG+XML"] {
            let out = safe(&format!(r#"<img src="data:{kind},<svg onload=x>">"#));
            assert!(!out.to_ascii_lowercase().contains("data:"), "{kind}: {out}");
        }
        let png = safe(r#"<img src="data:image/PNG;base64,iVBORw0KGgo=">"#);
        assert!(png.contains("data:image/PNG"), "{png}");
    }

    #[test]
    fn urls_become_absolute() {
        assert_eq!(
            safe(r#"<img src="/assets/x.png" alt="x">"#),
            r#"<img src="https://prometheus.io/assets/x.png" alt="x">"#
        );
        assert_eq!(
            safe(r#"<a href="img.png">a</a><a href="../x">b</a>"#),
            r#"<a href="https://prometheus.io/blog/2017/09/04/post/img.png">a</a><a href="https://prometheus.io/blog/2017/09/04/x">b</a>"#
        );
        assert_eq!(
            safe(r#"<a href="//cdn.example.org/x">a</a>"#),
            r#"<a href="https://cdn.example.org/x">a</a>"#
        );
        assert_eq!(
            safe(r##"<a href="#fn-1">1</a>"##),
            r#"<a href="https://prometheus.io/blog/2017/09/04/post/#fn-1">1</a>"#
        );
        assert_eq!(
            safe(
                r#"<video poster="p.jpg" src="/v.mp4"></video><blockquote cite="/q">q</blockquote>"#
            ),
            r#"<video poster="https://prometheus.io/blog/2017/09/04/post/p.jpg" src="https://prometheus.io/v.mp4"></video><blockquote cite="https://prometheus.io/q">q</blockquote>"#
        );
        assert_eq!(
            safe(r#"<img srcset="/a.png 1x, b.png 2x" alt="">"#),
            r#"<img srcset="https://prometheus.io/a.png 1x, https://prometheus.io/blog/2017/09/04/post/b.png 2x" alt="">"#
        );
        assert_eq!(
            safe(r#"<a href="mailto:a@b.org">m</a>"#),
            r#"<a href="mailto:a@b.org">m</a>"#
        );
    }

    #[test]
    fn character_references_in_attributes_are_read_as_a_browser_reads_them() {
        // lol_html hands values over as written; resolved undecoded,
        // `&#x2F;docs` became `…/post/&#x2F;docs`.
        assert_eq!(
            safe(r#"<a href="&#x2F;docs">d</a><img src="&#47;i&period;png" alt="">"#),
            r#"<a href="https://prometheus.io/docs">d</a><img src="https://prometheus.io/i.png" alt="">"#
        );
        // A query's `&` stays one `&amp;`, never `&amp;amp;`.
        assert_eq!(
            safe(r#"<a href="/s?a=1&amp;b=2&c=3">s</a>"#),
            r#"<a href="https://prometheus.io/s?a=1&amp;b=2&amp;c=3">s</a>"#
        );
        assert_eq!(
            safe(r#"<iframe src="https://example.org/e?a=1&amp;b=2" title="A &amp; B"></iframe>"#),
            r#"<a href="https://example.org/e?a=1&amp;b=2">A &amp; B</a>"#
        );
        // Encoded, a script URL or a style's url( is still what it is.
        for hidden in [
            r#"<a href="&#x6A;avascript:alert(1)">x</a>"#,
            r#"<a href="javascript&colon;alert(1)">x</a>"#,
            r#"<a href="java&#x09;script:alert(1)">x</a>"#,
        ] {
            assert_eq!(safe(hidden), "<a>x</a>", "{hidden}");
        }
        assert_eq!(
            safe(r#"<span style="background: url&#40;https://t.example/p.gif)">b</span>"#),
            "<span>b</span>"
        );
    }

    #[test]
    fn a_url_wrapped_onto_the_next_line_is_joined() {
        assert_eq!(
            safe("<a href=\"https://example.org/a\n/b\">x</a>"),
            r#"<a href="https://example.org/a/b">x</a>"#
        );
    }

    #[test]
    fn scripts_handlers_and_javascript_urls_go() {
        assert_eq!(
            safe(
                r#"<p onclick="x()">hi<script>alert(1)</script></p><script src="/w.js"></script>"#
            ),
            "<p>hi</p>"
        );
        assert_eq!(safe(r#"<a href="javascript:alert(1)">x</a>"#), "<a>x</a>");
        assert_eq!(safe(r#"<a href=" JaVaScRiPt:alert(1)">x</a>"#), "<a>x</a>");
        assert_eq!(safe(r#"<img src="vbscript:x" onerror="y">"#), "<img>");
        assert_eq!(safe("<p>a<!-- c --></p><style>p{}</style>"), "<p>a</p>");
        assert_eq!(
            safe(r#"<span style="color: red">a</span><span style="background: url(x)">b</span>"#),
            r#"<span style="color: red">a</span><span>b</span>"#
        );
    }

    #[test]
    fn youtube_iframe_becomes_a_thumbnail_link() {
        let out = safe(
            r#"<iframe width="560" height="315" src="https://www.youtube.com/embed/dQw4w9WgXcQ?rel=0" title="PromCon talk" allowfullscreen></iframe>"#,
        );
        assert_eq!(
            out,
            r#"<a href="https://www.youtube.com/watch?v=dQw4w9WgXcQ"><img src="https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg" alt="Watch the video: PromCon talk" width="480" height="360"></a>"#
        );
        let out = safe(r#"<iframe src="//www.youtube.com/embed/abc_-1"></iframe>"#);
        assert!(out.contains("watch?v=abc_-1"), "{out}");
    }

    #[test]
    fn other_iframes_become_links_or_stay_when_kept() {
        assert_eq!(
            safe(r#"<iframe src="/demo/" title="Demo"></iframe>"#),
            r#"<a href="https://prometheus.io/demo/">Demo</a>"#
        );
        let page = Url::parse("https://x.org/p/").unwrap();
        assert_eq!(
            Sanitizer {
                page_url: &page,
                iframes: IframePolicy::Keep
            }
            .fragment(r#"<iframe src="/demo/"></iframe>"#),
            r#"<iframe src="https://x.org/demo/"></iframe>"#
        );
        assert_eq!(safe(r#"<iframe src="javascript:x"></iframe>"#), "");
    }

    #[test]
    fn what_a_reader_would_run_is_gone() {
        // A tag left open by one block takes attributes from the next.
        let out = safe("<details title='\n<p>x' open ontoggle='alert(1)'</p>");
        assert!(
            out.starts_with("<details title='\n<p>x' open") && !out.contains("ontoggle"),
            "{out}"
        );
        // Raw-text elements go with their content.
        // As a browser does, the `</xmp>` in the attribute ends the xmp; the
        // img after it is a real element, and loses its handler.
        assert_eq!(
            safe(r#"a <xmp> b <img title="</xmp><img src=x onerror=alert(1)>"> c"#),
            r#"a <img src="https://prometheus.io/blog/2017/09/04/post/x">"> c"#
        );
        assert_eq!(safe("<plaintext>rest"), "");
        assert_eq!(
            safe(
                r#"<svg><a xlink:href="javascript:alert(4)"><text>t</text></a><set attributeName="href" to="javascript:x"/><image xlink:href="/r.png"/></svg>"#
            ),
            r#"<svg><a><text>t</text></a><image xlink:href="https://prometheus.io/r.png" /></svg>"#
        );
        let page = Url::parse("https://x.org/p/").unwrap();
        let keep = Sanitizer {
            page_url: &page,
            iframes: IframePolicy::Keep,
        };
        assert_eq!(
            keep.fragment(r#"<iframe srcdoc="<script>alert(9)</script>" src="/f"></iframe>"#),
            r#"<iframe src="https://x.org/f"></iframe>"#
        );
        assert_eq!(
            safe(r#"<meta http-equiv="refresh" content="0;url=javascript:x">"#),
            ""
        );
        assert_eq!(safe(r#"<P ONCLICK="x">a</P>"#), "<P>a</P>");
    }

    /// Found by the `post` fuzz target (fuzz/artifacts/post/nul-joins-a-script-tag).
    #[test]
    fn characters_xml_forbids_cannot_join_a_tag() {
        for html in [
            "<div lck=><\0\0\0\0\0script>alert(1)</script>",
            "<\u{1}img src=x o\u{b}nerror=alert(1)>",
            "<a href=\"java\u{0}script:alert(1)\">a</a>",
        ] {
            let out = safe(html);
            let lower = out.to_ascii_lowercase();
            assert!(
                !lower.contains("<script")
                    && !lower.contains("onerror")
                    && !lower.contains("javascript"),
                "{html:?} became {out:?}"
            );
            assert_eq!(strip_xml_illegal(&out), out.as_str());
        }
    }

    /// Found by the `html` fuzz target (fuzz/artifacts/html/comment-removal-joins-a-tag).
    #[test]
    fn a_removed_comment_or_element_cannot_join_a_tag() {
        assert_eq!(safe("<<!>r on>"), "&lt;r on>");
        assert_eq!(
            safe("x <<!-- -->details open ontoggle=alert(1)>"),
            "x &lt;details open ontoggle=alert(1)>"
        );
        assert_eq!(
            safe("<<script>x</script>img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)>"
        );
        assert_eq!(safe("a < b <p>c</p>"), "a &lt; b <p>c</p>");
    }

    #[test]
    fn plain_text_decodes_entities_and_keeps_inline_spacing() {
        assert_eq!(
            to_plain_text(
                "<p>Read <a href=\"/m\">the manual</a>, then <em>try</em> it &mdash; &amp; go&#33;</p><p>Next</p>"
            ),
            "Read the manual, then try it — & go! Next"
        );
    }

    #[test]
    fn xml_illegal_characters_are_dropped() {
        assert_eq!(
            strip_xml_illegal("a\u{1}b\u{b}c\td\ne\u{fffe}"),
            "abc\td\ne"
        );
        assert!(matches!(strip_xml_illegal("clean"), Cow::Borrowed(_)));
    }

    #[test]
    fn balanced_fragments_are_told_from_cut_ones() {
        for html in [
            "<p>a <em>b</em></p>",
            "<p>a<br>b<img src=x></p>",
            "<div><table><tr><td>x</td></tr></table></div>",
            "text only",
        ] {
            assert!(is_balanced(html), "{html}");
        }
        for html in [
            "<div><table><tr><td>x",
            "<p>a</p></div>",
            "<ul><li>one<li>two</ul>",
        ] {
            assert!(!is_balanced(html), "{html}");
            assert!(is_balanced(&balance(html)), "{html} → {}", balance(html));
        }
    }
}

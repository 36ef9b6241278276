//! Properties of what `newsletter` writes, checked with proptest on posts
//! generated from a small Markdown grammar (paragraphs, emphasis, links and
//! images with relative, absolute and hostile URLs, lists, quotes, code,
//! tables, footnotes, raw HTML snippets, hostile ones among them) and on
//! titles of arbitrary Unicode:
//!
//! - the excerpt's text is a prefix of the full post's text;
//! - HTML in feeds and digests is safe: every URL attribute absolute, no
//!   `<script>`, `on*` attribute or `javascript:` URL (read back by
//!   html5ever, through scraper, as a browser would);
//! - two builds of the same posts are byte-identical;
//! - a title comes back exactly from the Atom, RSS and JSON feeds and from
//!   the digest's Subject and text part.
//!
//! Case counts are kept small (`PROPTEST_CASES` overrides them) so the
//! suite stays fast.

mod common;

use std::path::Path;

use chrono::{DateTime, Utc};
use newsletter::config::{Config, IframePolicy};
use newsletter::content::parse_post;
use newsletter::html::Sanitizer;
use newsletter::render::render_post;
use proptest::prelude::*;
use scraper::{Html, Node};
use url::Url;

use common::{NOW, Site, manifest_dir, run};

// ---------------------------------------------------------------------------
// The grammar
// ---------------------------------------------------------------------------

/// Words: plain, accented, CJK, right-to-left, emoji, combining marks, and
/// what Markdown or HTML treat specially.
const WORDS: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "Grüße",
    "日本語",
    "שלום",
    "مرحبا",
    "e\u{301}",
    "🦀",
    "👩‍👩‍👧",
    "a&b",
    "x<y",
    "\"q\"",
    "it's",
    "5*3",
    "snake_case",
    "AT&amp;T",
    "&lt;tag&gt;",
    "&#x3C;script&#x3E;",
    "\\*",
    "~~gone~~",
    "NUL\u{0}BEL\u{7}",
];

/// Link targets: relative, absolute, and ones that must not survive.
const URLS: &[&str] = &[
    "/root/page",
    "rel.html",
    "../up/",
    "#frag",
    "?q=1&r=2",
    "img.png",
    "sub/dir/x.jpg",
    "https://example.com/a?b=c#d",
    "http://example.net/",
    "//cdn.example.org/x.png",
    "mailto:someone@example.org",
    "tel:+1234",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(2)",
    "java%09script:alert(3)",
    "vbscript:msgbox(4)",
    "data:text/html,%3Cscript%3Ealert(5)%3C/script%3E",
    "data:image/png;base64,iVBORw0KGgo=",
    "data:image/svg+xml,%3Csvg%20onload=alert(6)%3E",
    "file:///etc/passwd",
];

/// URLs as they may be written in raw HTML attributes, where entities and
/// whitespace count.
const RAW_URLS: &[&str] = &[
    "/root/page",
    "rel.html",
    "https://example.com/a",
    "//cdn.example.org/x.png",
    " javascript:alert(1)",
    "java\tscript:alert(2)",
    "&#106;avascript:alert(3)",
    "jav&#x09;ascript:alert(4)",
    "&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(5)",
    "\u{1}javascript:alert(6)",
    "vbscript:alert(7)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCg4KTwvc2NyaXB0Pg==",
    "img.png",
];

/// Raw HTML, `{u}` and `{v}` standing for URLs. Hostile ones try what
/// browsers run: scripts, handlers, `javascript:` URLs, and markup that a
/// parser reads differently from a sanitizer (mutation XSS).
const RAW_HTML: &[&str] = &[
    "<b>bold</b>",
    "<span class=\"c\">span</span>",
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<img src=\"{u}\" srcset=\"{u} 1x, {v} 2x\" alt=\"i\">",
    "<a href=\"{u}\" onclick=\"alert(1)\">l</a>",
    "<a href='{u}'>unclosed",
    "<svg onload=alert(1)><a xlink:href=\"{u}\"><text>t</text></a></svg>",
    "<svg><script>alert(1)</script></svg>",
    "<svg><animate attributeName=href values=\"javascript:alert(1)\"/></svg>",
    "<svg><set attributeName=onmouseover to=alert(1) /></svg>",
    "<math><mi xlink:href=\"{u}\">m</mi></math>",
    "<iframe src=\"{u}\"></iframe>",
    "<iframe src=\"https://www.youtube.com/embed/abc_-1\" title=\"T\"></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<video poster=\"{u}\" src=\"{v}\"></video>",
    "<audio src=\"{u}\"></audio>",
    "<form action=\"{u}\"><button formaction=\"{v}\">b</button></form>",
    "<input type=image src=\"{u}\" formaction=\"{v}\">",
    "<blockquote cite=\"{u}\">q</blockquote>",
    "<table background=\"{u}\"><tr><td>c</td></tr></table>",
    "<img src=\"{u}\" lowsrc=\"{v}\" dynsrc=\"{u}\" longdesc=\"{v}\" usemap=\"#m\">",
    "<area href=\"{u}\">",
    "<object data=\"{u}\"></object>",
    "<embed src=\"{u}\">",
    "<base href=\"https://evil.example/\">",
    "<link rel=stylesheet href=\"{u}\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<div style=\"background:url({u})\">s</div>",
    "<p style=\"color: red\">red</p>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
    "<xmp><img src=x onerror=alert(1)></xmp>",
    "<textarea><script>alert(1)</script></textarea>",
    "<template><script>alert(1)</script></template>",
    "<details open ontoggle=alert(1)>",
    "<div title='\n\nx' onmouseover='alert(1)'",
    "<!-- comment <script>alert(1)</script> -->",
    "<!--",
    "<?xml-stylesheet href=\"javascript:alert(1)\"?>",
    "<p>para <b>bold</p>",
    "</div></div>",
    "<body onload=alert(1)>",
    "<a href=\"{u}\" ping=\"https://track.example/\">p</a>",
    "<svg><style><img src=x onerror=alert(1)></style></svg>",
    "<svg></p><style><a id=\"</style><img src=1 onerror=alert(1)>\">",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    "<image src=\"{u}\">",
    "<isindex action=\"{u}\">",
    "<a href=\"{u}\"><img src=\"{v}\"></a>",
];

fn word() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(WORDS).prop_map(String::from)
}

fn url() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(URLS).prop_map(String::from)
}

fn raw_html() -> impl Strategy<Value = String> + Clone {
    (
        prop::sample::select(RAW_HTML),
        prop::sample::select(RAW_URLS),
        prop::sample::select(RAW_URLS),
    )
        .prop_map(|(html, u, v)| html.replace("{u}", u).replace("{v}", v))
}

/// A piece of a line: words, code, links, images, autolinks, raw HTML,
/// emphasis around them.
fn inline() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        6 => word(),
        1 => word().prop_map(|w| format!("`{w}`")),
        2 => (word(), url()).prop_map(|(w, u)| format!("[{w}]({u})")),
        1 => (word(), url()).prop_map(|(w, u)| format!("![{w}]({u})")),
        1 => url().prop_map(|u| format!("<{u}>")),
        2 => raw_html(),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| format!("*{s}*")),
            inner.clone().prop_map(|s| format!("**{s}**")),
            (inner, url()).prop_map(|(s, u)| format!("[{s}]({u})")),
        ]
    })
    .boxed()
}

fn line() -> impl Strategy<Value = String> + Clone {
    prop::collection::vec(inline(), 1..6).prop_map(|pieces| pieces.join(" "))
}

/// Code that looks like what it must not be taken for.
const CODE: &[&str] = &[
    "let x = 1;",
    "<!-- more -->",
    "<script>alert(1)</script>",
    "<a href=\"javascript:alert(1)\">x</a>",
];

/// One block of Markdown.
fn block() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => line(),
        2 => prop::collection::vec(line(), 1..4)
            .prop_map(|items| items.iter().map(|i| format!("- {i}\n")).collect()),
        1 => prop::collection::vec(line(), 1..3)
            .prop_map(|items| items.iter().enumerate().map(|(n, i)| format!("{}. {i}\n", n + 1)).collect()),
        1 => (line(), line()).prop_map(|(a, b)| format!("- {a}\n  - {b}\n")),
        1 => line().prop_map(|l| format!("> {l}")),
        1 => line().prop_map(|l| format!("## {l}")),
        1 => prop::sample::select(CODE).prop_map(|c| format!("```\n{c}\n```")),
        2 => raw_html(),
        1 => (line(), line()).prop_map(|(a, b)| format!("| a | b |\n|---|---|\n| {a} | {b} |")),
        1 => (word(), line()).prop_map(|(w, n)| format!("{w}[^n]\n\n[^n]: {n}")),
    ]
}

fn blocks(max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(block(), 0..max)
}

/// Where the `<!-- more -->` marker goes: a block of its own, or inside a
/// paragraph, emphasis, a link, a list item, a quote or a table cell.
#[derive(Debug, Clone, Copy)]
enum Marker {
    Block,
    Inline,
    Emphasis,
    Link,
    ListItem,
    Quote,
    TableCell,
}

/// A body whose first block is plain words (so the text before the marker
/// is never empty), then blocks, the marker, and more blocks.
fn body_with_marker() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(word(), 1..6),
        blocks(5),
        prop::sample::select(vec![
            Marker::Block,
            Marker::Inline,
            Marker::Emphasis,
            Marker::Link,
            Marker::ListItem,
            Marker::Quote,
            Marker::TableCell,
        ]),
        line(),
        blocks(5),
    )
        .prop_map(|(first, before, marker, rest_of_line, after)| {
            let mut body = first.join(" ");
            for block in before {
                body.push_str("\n\n");
                body.push_str(&block);
            }
            let w = &first[0];
            let more = "<!-- more -->";
            body.push_str(&match marker {
                Marker::Block => format!("\n\n{more}\n\n"),
                Marker::Inline => format!("\n\n{w} {more} {rest_of_line}\n\n"),
                Marker::Emphasis => format!("\n\n{w} *{w} {more} {w}* {rest_of_line}\n\n"),
                Marker::Link => format!("\n\n{w} [{w} {more} {w}](/x) {rest_of_line}\n\n"),
                Marker::ListItem => format!("\n\n- {w}\n- {w} {more} {rest_of_line}\n- {w}\n\n"),
                Marker::Quote => format!("\n\n> {w}\n>\n> {w} {more} {rest_of_line}\n\n"),
                Marker::TableCell => format!(
                    "\n\n| a | b |\n|---|---|\n| {w} | {w} {more} {w} |\n| {rest_of_line} | c |\n\n"
                ),
            });
            body.push_str(&after.join("\n\n"));
            body
        })
}

/// Any body: blocks with the marker somewhere, or none.
fn any_body() -> impl Strategy<Value = String> {
    (blocks(8), prop::option::of(0usize..8)).prop_map(|(mut blocks, marker)| {
        if let Some(at) = marker {
            blocks.insert(at.min(blocks.len()), "<!-- more -->".into());
        }
        blocks.join("\n\n")
    })
}

// ---------------------------------------------------------------------------
// Reading HTML back
// ---------------------------------------------------------------------------

const PAGE: &str = "https://blog.example.org/posts/2024/01/01/post/";

fn render(
    body: &str,
    summary: Option<&str>,
    iframes: IframePolicy,
) -> newsletter::render::Rendered {
    let page = Url::parse(PAGE).unwrap();
    let safe = Sanitizer {
        page_url: &page,
        iframes,
    };
    render_post(body, summary, "The title", &safe)
}

/// The visible text of an HTML fragment as html5ever reads it, white space
/// collapsed.
fn visible_text(html: &str) -> String {
    let fragment = Html::parse_fragment(html);
    let text: String = fragment.root_element().text().collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Attributes that hold a URL (the sanitizer's list; README: "Safe HTML").
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "poster",
    "cite",
    "action",
    "formaction",
    "background",
    "longdesc",
    "data",
    "codebase",
    "manifest",
    "icon",
    "dynsrc",
    "lowsrc",
    "usemap",
];

/// Elements that must not survive (README: "Safe HTML").
const FORBIDDEN: &[&str] = &["script", "style", "object", "embed"];

/// Panics naming the first thing in `html` that a reader could run: a
/// forbidden element, a comment, an `on*` attribute, a `javascript:` or
/// `vbscript:` value, a URL attribute that is not absolute, or an
/// XML-illegal character. `document` is for a whole page (the digest),
/// whose head has `<meta>` elements and which may hold comments: of the
/// elements, only scripts are looked for there.
#[track_caller]
fn assert_safe(html: &str, what: &str, document: bool) {
    assert!(
        !html.contains(|c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')),
        "{what}: an XML-illegal character in {html:?}"
    );
    let parsed = if document {
        Html::parse_document(html)
    } else {
        Html::parse_fragment(html)
    };
    for node in parsed.tree.nodes() {
        match node.value() {
            Node::Comment(c) if !document => panic!("{what}: a comment {c:?} in {html}"),
            Node::ProcessingInstruction(p) => panic!("{what}: {p:?} in {html}"),
            Node::Element(el) => {
                let name = el.name().to_ascii_lowercase();
                assert!(
                    name != "script" && (document || !FORBIDDEN.contains(&name.as_str())),
                    "{what}: <{name}> in {html}"
                );
                for (attr, value) in el.attrs() {
                    let attr = attr.to_ascii_lowercase();
                    assert!(!attr.starts_with("on"), "{what}: <{name} {attr}> in {html}");
                    // As a browser reads a URL: ASCII whitespace and controls
                    // anywhere do not count. In a style, anywhere at all.
                    let squeezed: String = value
                        .chars()
                        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
                        .collect::<String>()
                        .to_ascii_lowercase();
                    let runs = |scheme: &str| {
                        squeezed.starts_with(scheme) || attr == "style" && squeezed.contains(scheme)
                    };
                    assert!(
                        !runs("javascript:") && !runs("vbscript:"),
                        "{what}: <{name} {attr}={value:?}> in {html}"
                    );
                    if URL_ATTRIBUTES.contains(&attr.as_str()) {
                        assert_absolute(value, &name, what, html);
                    } else if attr == "srcset" {
                        for candidate in value.split(',') {
                            if let Some(url) = candidate.split_whitespace().next() {
                                assert_absolute(url, &name, what, html);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[track_caller]
fn assert_absolute(value: &str, element: &str, what: &str, html: &str) {
    let url = Url::parse(value).unwrap_or_else(|e| {
        panic!("{what}: <{element}> URL {value:?} is not absolute ({e}) in {html}")
    });
    let image = matches!(element, "img" | "source" | "image" | "input");
    let allowed = match url.scheme() {
        "http" | "https" | "mailto" | "tel" => true,
        "data" => image && url.path().starts_with("image/") && !url.path().starts_with("image/svg"),
        _ => false,
    };
    assert!(allowed, "{what}: <{element}> URL {value:?} in {html}");
}

// ---------------------------------------------------------------------------
// Excerpts and safety, in the library
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The excerpt ends at the marker with its open tags closed, so its
    /// HTML is a prefix of the post's only when the marker is between
    /// blocks; what a reader sees of it is always the start of what they
    /// see of the whole post.
    #[test]
    fn the_excerpt_text_is_a_prefix_of_the_content_text(body in body_with_marker()) {
        let rendered = render(&body, None, IframePolicy::Link);
        let excerpt = visible_text(&rendered.excerpt);
        let content = visible_text(&rendered.content);
        prop_assert!(!excerpt.is_empty());
        prop_assert!(
            content.starts_with(&excerpt),
            "excerpt {excerpt:?}\ncontent {content:?}\nexcerpt HTML {}\ncontent HTML {}",
            rendered.excerpt,
            rendered.content
        );
    }

    /// Feed HTML (the post, its excerpt, a `summary` key's excerpt, with
    /// iframes turned into links or kept) read back by html5ever: absolute
    /// URLs, nothing a reader could run. The excerpt's text is never empty.
    #[test]
    fn feed_html_is_safe(
        body in any_body(),
        summary in prop::option::weighted(0.2, line()),
        iframes in prop_oneof![Just(IframePolicy::Link), Just(IframePolicy::Keep)],
    ) {
        let rendered = render(&body, summary.as_deref(), iframes);
        assert_safe(&rendered.content, "content", false);
        assert_safe(&rendered.excerpt, "excerpt", false);
        prop_assert!(!rendered.excerpt_text.is_empty());
    }
}

/// A site in `folder` whose digest uses the project's templates.
fn config(folder: &Path) -> Config {
    let text = format!(
        "[site]\ntitle = \"Props\"\nbase_url = \"https://blog.example.org\"\n\
         author = \"Props Author\"\n\n\
         [content]\ndir = \"content\"\npermalink = \"/posts/:year/:month/:day/:slug/\"\n\n\
         [digest]\ntemplates = {:?}\n\n\
         [store]\npath = \"newsletter.db\"\n",
        manifest_dir().join("templates").display().to_string()
    );
    Config::parse(&text, &folder.join("config.toml"), folder).expect("the test config is valid")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The digest's HTML part, for a post of any body, as a mail client
    /// reads it: absolute URLs, no script, handler or `javascript:`.
    #[test]
    fn digest_html_is_safe(body in any_body()) {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let post = parse_post(
            &format!("---\ntitle: Post\ncreated_at: 2024-01-01\n---\n\n{body}"),
            Path::new("post.md"),
            &config,
        )
        .unwrap();
        let digest = newsletter::email::digest::render(&config, &[&post], 1).unwrap();
        let personal = newsletter::email::digest::personalize(
            &digest,
            None,
            "reader@example.org",
            "Reader",
            "https://blog.example.org/unsubscribe/t0k3n",
            "https://blog.example.org/preferences/t0k3n",
        );
        assert_safe(&personal.html, "digest", true);
    }
}

// ---------------------------------------------------------------------------
// Rebuilds, with the binary
// ---------------------------------------------------------------------------

/// `text` as a double-quoted YAML string: quotes, backslashes and what
/// YAML will not take as it is (control characters; U+2028 and U+2029, line
/// breaks in YAML 1.1 that would fold to spaces) escaped.
fn yaml_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const TAGS: &[&str] = &["rust", "Rust", "go", "c++", "c#", "日本", "feeds"];
const DATES: &[&str] = &[
    "2024-01-01",
    "2024-01-01T12:00:00+02:00",
    "2023-06-30 08:00",
    "2026-12-31",
];

/// A post file: (title, date, tags, draft, body).
fn post_file() -> impl Strategy<Value = (String, String, Vec<String>, bool, String)> {
    (
        prop::collection::vec(word(), 1..4).prop_map(|w| w.join(" ")),
        prop::sample::select(DATES).prop_map(String::from),
        prop::sample::subsequence(TAGS, 0..4)
            .prop_map(|t| t.into_iter().map(String::from).collect()),
        prop::bool::weighted(0.1),
        any_body(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Two builds of the same posts at the same moment write the same
    /// bytes (per-tag feeds too), and a third one changes no file. The HTML
    /// in every feed file is safe.
    #[test]
    fn rebuilds_are_byte_identical(posts in prop::collection::vec(post_file(), 1..6), limit in 0usize..4) {
        let site = Site::empty();
        site.write(
            "config.toml",
            format!(
                "[site]\ntitle = \"Rebuild\"\nbase_url = \"https://blog.example.org\"\n\n\
                 [content]\ndir = \"content\"\n\n[feeds]\nlimit = {limit}\nper_tag = true\n"
            ),
        );
        for (i, (title, date, tags, draft, body)) in posts.iter().enumerate() {
            site.write(
                &format!("content/post-{i}.md"),
                format!(
                    "---\ntitle: {}\ncreated_at: {date}\ntags: {tags:?}\ndraft: {draft}\n---\n\n{body}\n",
                    yaml_quoted(title)
                ),
            );
        }
        let build = |out: &str| run(&mut site.newsletter(["build", "--now", NOW, "--output", out])).success();
        build("a");
        build("b");
        let mut a = site.snapshot("a");
        prop_assert!(a == site.snapshot("b"), "the two builds differ");
        // The build's manifest is no feed.
        prop_assert!(a.remove(Path::new(".newsletter.manifest")).is_some());
        prop_assert!(a.len() >= 3);
        // And each is what these posts make, not only what the other build
        // made: one entry for each post neither a draft nor dated after NOW,
        // at most `limit` of them (0: all).
        let published = posts
            .iter()
            .filter(|(_, date, _, draft, _)| !draft && !date.starts_with("2026-12"))
            .count();
        let shown = if limit == 0 { published } else { published.min(limit) };
        let count = |file: &str, element: &str| {
            String::from_utf8_lossy(&a[Path::new(file)]).matches(element).count()
        };
        prop_assert_eq!(count("atom.xml", "<entry>"), shown);
        prop_assert_eq!(count("rss.xml", "<item>"), shown);
        let again = build("a");
        prop_assert!(again.stdout.contains(&format!("wrote 0 files ({} unchanged)", a.len())), "{again}");
        for (path, bytes) in &a {
            assert_feed_html_safe(path, bytes);
        }
    }
}

/// The HTML a feed file carries (Atom `summary` and `content`, RSS
/// `description` and `content:encoded`, JSON Feed `content_html`), each
/// read back and checked by [`assert_safe`].
#[track_caller]
fn assert_feed_html_safe(path: &Path, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("feeds are UTF-8");
    let what = path.display().to_string();
    if path.extension().is_some_and(|e| e == "json") {
        let json: serde_json::Value = serde_json::from_str(text).expect("JSON");
        for item in json["items"].as_array().expect("items") {
            assert_safe(
                item["content_html"].as_str().expect("content_html"),
                &what,
                false,
            );
        }
        return;
    }
    let xml = roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    let html_elements = ["summary", "content", "description", "encoded"];
    for node in xml.descendants() {
        let in_entry = node
            .parent_element()
            .is_some_and(|p| matches!(p.tag_name().name(), "entry" | "item"));
        if in_entry && html_elements.contains(&node.tag_name().name()) {
            assert_safe(node.text().unwrap_or_default(), &what, false);
        }
    }
}

// ---------------------------------------------------------------------------
// Titles, through feeds and email
// ---------------------------------------------------------------------------

/// Pieces of titles: what YAML, TOML, XML, HTML, RFC 2047 and Jinja treat
/// specially, scripts of all directions, joiners and combining marks.
const TITLE_PIECES: &[&str] = &[
    "&",
    "<",
    ">",
    "\"",
    "'",
    ":",
    ": ",
    " #",
    "# ",
    "&amp;",
    "<b>",
    "]]>",
    "{{ x }}",
    "{% if %}",
    "\\",
    "\\n",
    "🦀",
    "👩‍👩‍👧",
    "שלום",
    "مرحبا",
    "\u{202e}",
    "e\u{301}",
    "\u{200b}",
    "\u{a0}",
    "日本語",
    "  ",
    "-",
    "* ",
    "[1]: x",
    "=?utf-8?q?x?=",
    "=?",
    "?=",
    "%20",
    "\u{2028}",
    "1. ",
    "Ω",
    "ﬁ",
    "𝔘𝔫𝔦",
    "\u{10ffff}",
    "\u{feff}",
];

/// A title: pieces, arbitrary characters (no control characters, nothing
/// XML forbids, not the private-use merge delimiters), words; trimmed and
/// never empty, as the front matter reader makes it.
fn title() -> impl Strategy<Value = String> {
    let char_ok = |c: &char| {
        !c.is_control() && !matches!(*c, '\u{e000}' | '\u{e001}' | '\u{fffe}' | '\u{ffff}')
    };
    let piece = prop_oneof![
        3 => any::<char>().prop_filter("printable", char_ok).prop_map(String::from),
        3 => prop::sample::select(TITLE_PIECES).prop_map(String::from),
        3 => "[a-zA-Z]{1,9}",
        2 => Just(" ".to_string()),
    ];
    prop::collection::vec(piece, 1..40)
        .prop_map(|pieces| pieces.concat().trim().to_string())
        .prop_filter("not empty", |t| !t.is_empty())
}

/// How the title is written in the front matter.
#[derive(Debug, Clone, Copy)]
enum Quoting {
    YamlDouble,
    YamlSingle,
    TomlBasic,
    TomlLiteral,
}

/// A post file with `title` written as `quoting` says (or double-quoted
/// YAML, where that style cannot hold it).
fn post_with_title(title: &str, quoting: Quoting) -> String {
    let yaml_double = || {
        format!(
            "---\ntitle: {}\ncreated_at: 2024-01-01\n---\n\nBody.\n",
            yaml_quoted(title)
        )
    };
    match quoting {
        Quoting::YamlSingle if !title.contains(['\u{2028}', '\u{2029}']) => format!(
            "---\ntitle: '{}'\ncreated_at: 2024-01-01\n---\n\nBody.\n",
            title.replace('\'', "''")
        ),
        Quoting::TomlBasic => format!(
            "+++\ntitle = \"{}\"\ndate = 2024-01-01\n+++\n\nBody.\n",
            title.replace('\\', "\\\\").replace('"', "\\\"")
        ),
        Quoting::TomlLiteral if !title.contains('\'') => {
            format!("+++\ntitle = '{title}'\ndate = 2024-01-01\n+++\n\nBody.\n")
        }
        _ => yaml_double(),
    }
}

/// White space runs as one space, as in a mail header.
fn collapse(text: &str) -> String {
    text.split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A title comes back exactly from the Atom and RSS `<title>` (XML
    /// parsed by roxmltree) and JSON Feed's `title`; in the digest's
    /// Subject, with white space collapsed (it is one header line); in
    /// the text part, as the `wrap` filter folds it, which joined again
    /// is the title with white space collapsed.
    #[test]
    fn a_title_survives_feeds_and_email_exactly(
        title in title(),
        quoting in prop_oneof![
            Just(Quoting::YamlDouble),
            Just(Quoting::YamlSingle),
            Just(Quoting::TomlBasic),
            Just(Quoting::TomlLiteral),
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        std::fs::create_dir(dir.path().join("content")).unwrap();
        std::fs::write(dir.path().join("content/2024-01-01-t.md"), post_with_title(&title, quoting)).unwrap();

        let out = dir.path().join("public");
        newsletter::build::build(&config, &out, now()).unwrap();
        let atom = std::fs::read_to_string(out.join("atom.xml")).unwrap();
        let atom = roxmltree::Document::parse(&atom).unwrap();
        let rss = std::fs::read_to_string(out.join("rss.xml")).unwrap();
        let rss = roxmltree::Document::parse(&rss).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("feed.json")).unwrap()).unwrap();
        let entry_title = |doc: &roxmltree::Document<'_>, entry: &str| {
            doc.descendants()
                .find(|n| n.tag_name().name() == entry)
                .and_then(|e| e.children().find(|c| c.tag_name().name() == "title"))
                .map(|t| t.text().unwrap_or_default().to_string())
        };
        prop_assert_eq!(entry_title(&atom, "entry"), Some(title.clone()));
        prop_assert_eq!(entry_title(&rss, "item"), Some(title.clone()));
        prop_assert_eq!(json["items"][0]["title"].as_str(), Some(title.as_str()));

        let preview = dir.path().join("preview");
        let mut config = config;
        config.secrets.token_secret = Some("a-secret-of-16-bytes-or-more".into());
        newsletter::email::preview::preview(&config, &preview, None, now())
            .unwrap()
            .expect("a digest to preview");
        let eml = std::fs::read(preview.join("digest.eml")).unwrap();
        let message = mail_parser::MessageParser::default().parse(&eml).unwrap();
        let subject = collapse(&format!("Props: {title}"));
        prop_assert_eq!(message.subject(), Some(subject.as_str()));

        let text = message.body_text(0).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("-----"))
            .skip(1)
            .take_while(|l| *l != "1 January 2024 · Props Author")
            .collect();
        let wrapped = newsletter::text::wrap(&title, 72);
        let expected: Vec<&str> = wrapped.lines().map(str::trim_end).collect();
        prop_assert_eq!(&lines, &expected, "text part:\n{}", text);
        // `wrap` repeats a leading quote mark on each line it makes.
        if !title.starts_with("> ") {
            prop_assert_eq!(collapse(&lines.join(" ")), collapse(&title));
        }
    }
}

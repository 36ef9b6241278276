//! A post file's text (any bytes, read as lossy UTF-8) → front matter and
//! Markdown → `Post` → rendered HTML and excerpt (with one of the two
//! iframe policies, by the input's length). Nothing may panic; a
//! post the parser refuses is fine. What renders must be script-free and
//! have a non-empty excerpt.

#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use newsletter::config::{Config, IframePolicy};
use newsletter::content::parse_post;
use newsletter::html::Sanitizer;
use newsletter::render::render_post;
use newsletter_fuzz::script_in;
use url::Url;

static CONFIG: LazyLock<Config> = LazyLock::new(|| newsletter_fuzz::config("", Path::new("/site")));

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let config = &*CONFIG;
    // Dated, so a post without a date key still parses.
    let Ok(post) = parse_post(&text, Path::new("2024-01-02-fuzz.md"), config) else {
        return;
    };
    let page = Url::parse(&config.site.url_for(&post.permalink))
        .expect("a permalink under an absolute base URL is a URL");
    let body = post.body().expect("a parsed post keeps its body");
    // One iframe policy per input (by its length), not both: the script
    // check (html5ever, quadratic in nesting depth) is most of the time.
    let iframes = if data.len() % 2 == 0 {
        IframePolicy::Link
    } else {
        IframePolicy::Keep
    };
    let safe = Sanitizer {
        page_url: &page,
        iframes,
    };
    let rendered = render_post(&body, post.summary.as_deref(), &post.title, &safe);
    assert!(!rendered.excerpt.is_empty(), "an empty excerpt");
    for (what, html) in [
        ("content", &rendered.content),
        ("excerpt", &rendered.excerpt),
    ] {
        if let Some(found) = script_in(html) {
            panic!("the {what} runs script: {found}\n{html}");
        }
    }
});

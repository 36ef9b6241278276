//! What the fuzz targets share: a site config, the splitting of one input
//! into several fields, and a check that HTML holds nothing a browser runs.

use std::path::Path;

use html5ever::tendril::TendrilSink;
use html5ever::{LocalName, QualName, ns, parse_fragment};
use markup5ever_rcdom::{NodeData, RcDom};
use newsletter::config::Config;

/// Separates the fields (posts, titles, names) of one fuzz input. 0xFF never
/// occurs in UTF-8, so a field cut at it is never a character cut in half.
pub const SEPARATOR: u8 = 0xFF;

/// The site every target uses; `extra` is appended TOML, `folder` is where
/// relative paths in it point.
pub fn config(extra: &str, folder: &Path) -> Config {
    let text = format!(
        "[site]\ntitle = \"Fuzz & <Blog>\"\nbase_url = \"https://blog.example.org/sub/\"\n{extra}"
    );
    Config::parse(&text, &folder.join("config.toml"), folder).expect("the fuzz config is valid")
}

/// The input cut at [`SEPARATOR`] into at most `max` fields (the last one
/// keeps any further separators, as text), each decoded as lossy UTF-8 so
/// that mutated bytes still reach the parsers.
pub fn fields(data: &[u8], max: usize) -> Vec<String> {
    data.splitn(max, |&b| b == SEPARATOR)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// Attributes whose value a browser loads or navigates to (HTML, SVG, old
/// IE extensions), so a script URL in any of them would run. (`archive`
/// and `classid` belong to `<object>` and `<applet>`, flagged whole.)
const URL_ATTRIBUTES: [&str; 17] = [
    "href",
    "src",
    "action",
    "formaction",
    "data",
    "poster",
    "background",
    "codebase",
    "cite",
    "longdesc",
    "usemap",
    "dynsrc",
    "lowsrc",
    "icon",
    "manifest",
    "ping",
    "xlink:href",
];

/// SVG elements that animate an attribute.
const ANIMATION_ELEMENTS: [&str; 5] = [
    "set",
    "animate",
    "animatemotion",
    "animatetransform",
    "animatecolor",
];

/// Elements that run code or load active content whatever their attributes.
/// (`<meta>` is checked by its `http-equiv`: a digest template's
/// `<meta charset>` is harmless, a refresh is not.)
const ACTIVE_ELEMENTS: [&str; 6] = ["script", "object", "embed", "applet", "base", "handler"];

/// What in `html` a browser would run: parsed as a browser parses an HTML
/// fragment in `<body>` (html5ever follows the HTML standard, entities
/// decoded), then every element and attribute checked. `None` when it is safe.
pub fn script_in(html: &str) -> Option<String> {
    let dom = parse_fragment(
        RcDom::default(),
        Default::default(),
        QualName::new(None, ns!(html), LocalName::from("body")),
        Vec::new(),
        false,
    )
    .one(html);
    let mut stack = vec![dom.document.clone()];
    while let Some(node) = stack.pop() {
        if let NodeData::Element { name, attrs, .. } = &node.data {
            let element = name.local.to_ascii_lowercase();
            if ACTIVE_ELEMENTS.contains(&element.as_str()) {
                return Some(format!("a <{element}> element"));
            }
            // SVG animation can set a link's href to any value (`to=`,
            // `values=`), a script URL too.
            let animates_href = attrs.borrow().iter().any(|a| {
                a.name
                    .local
                    .eq_ignore_ascii_case(&LocalName::from("attributename"))
                    && a.value.to_ascii_lowercase().ends_with("href")
            });
            if ANIMATION_ELEMENTS.contains(&element.as_str()) && animates_href {
                return Some(format!("a <{element}> of an href"));
            }
            for attr in attrs.borrow().iter() {
                let prefix = attr
                    .name
                    .prefix
                    .as_ref()
                    .map(|p| format!("{}:", p.to_ascii_lowercase()))
                    .unwrap_or_default();
                let attr_name = format!("{prefix}{}", attr.name.local.to_ascii_lowercase());
                let value: &str = &attr.value;
                if attr_name.starts_with("on") {
                    return Some(format!("an event handler {attr_name}= on <{element}>"));
                }
                if matches!(attr_name.as_str(), "srcdoc" | "http-equiv") {
                    return Some(format!("{attr_name}= on <{element}>"));
                }
                let runs = match attr_name.as_str() {
                    "srcset" => value.split(',').any(is_script_url),
                    "style" => style_runs(value),
                    name => URL_ATTRIBUTES.contains(&name) && is_script_url(value),
                };
                if runs {
                    return Some(format!("{attr_name}={value:?} on <{element}>"));
                }
            }
        }
        stack.extend(node.children.borrow().iter().cloned());
    }
    None
}

/// True when a URL, as a browser reads it (leading and trailing C0
/// controls and spaces trimmed, tabs and newlines inside removed), has a
/// scheme that runs script, or is a `data:` URL of a document rather than
/// of a raster image (an SVG or HTML document in a frame runs its scripts).
pub fn is_script_url(value: &str) -> bool {
    let trimmed = value.trim_matches(|c: char| c <= ' ');
    let squeezed: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .take(16)
        .collect::<String>()
        .to_ascii_lowercase();
    let document_data = squeezed.starts_with("data:")
        && (!squeezed.starts_with("data:image/") || squeezed.starts_with("data:image/svg"));
    squeezed.starts_with("javascript:") || squeezed.starts_with("vbscript:") || document_data
}

/// True when an inline style can run script: an old IE expression, or a
/// `url(` with a script or data URL, or behind an IE behavior or a Firefox
/// binding (which load script from any URL). Whitespace stays:
/// `expr\nession(` is two CSS tokens, not a call.
fn style_runs(style: &str) -> bool {
    let lower = style.to_ascii_lowercase();
    let loads_script = [
        "javascript:",
        "vbscript:",
        "data:",
        "behavior",
        "-moz-binding",
    ]
    .iter()
    .any(|s| lower.contains(s));
    lower.contains("expression") || (lower.contains("url(") && loads_script)
}

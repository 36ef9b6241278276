//! Front matter: split a post into its metadata block and body, then read the
//! keys that Prometheus, Hugo, Jekyll and Zola posts use.

use serde_json::{Map, Value};

/// A problem found in a post, with the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl LineError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        LineError {
            line,
            message: message.into(),
        }
    }
}

/// Which syntax the front matter is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Between `---` lines (Jekyll, Hugo, Prometheus).
    Yaml,
    /// Between `+++` lines (Hugo, Zola).
    Toml,
}

/// A post split at its front-matter delimiters; all borrowed from the source.
#[derive(Debug)]
pub struct Split<'a> {
    pub format: Format,
    /// The text between the delimiter lines.
    pub front: &'a str,
    /// Everything after the closing delimiter line.
    pub body: &'a str,
    /// The 1-based line where `body` starts.
    pub body_line: usize,
}

/// Splits normalised source (no BOM, LF line endings) into front matter and body.
pub fn split(source: &str) -> Result<Split<'_>, LineError> {
    let first = source.lines().next().unwrap_or("");
    let format = match first.trim_end() {
        "---" => Format::Yaml,
        "+++" => Format::Toml,
        _ => {
            return Err(LineError::new(
                1,
                "no front matter: start the file with a `---` line, then `title: ...` and \
                 `created_at: YYYY-MM-DD`, then a closing `---` line",
            ));
        }
    };
    let delimiter = if format == Format::Yaml { "---" } else { "+++" };
    let front_start = first.len() + 1;
    let mut offset = front_start.min(source.len());
    for (line, text) in (2..).zip(source[offset..].split_inclusive('\n')) {
        if text.trim_end() == delimiter {
            let body_start = offset + text.len();
            return Ok(Split {
                format,
                front: &source[front_start.min(offset)..offset],
                body: &source[body_start..],
                body_line: line + 1,
            });
        }
        offset += text.len();
    }
    Err(LineError::new(
        1,
        format!(
            "front matter opened with `{delimiter}` is never closed: add a `{delimiter}` line \
             after the last key"
        ),
    ))
}

/// The keys we understand, whatever the generator that wrote the post.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FrontMatter {
    pub title: Option<String>,
    /// `created_at` or `date`, as written (parsed later, with the site's zone).
    pub date: Option<Dated>,
    /// `updated` or `lastmod`.
    pub updated: Option<Dated>,
    pub authors: Vec<String>,
    /// `draft: true`, or Jekyll's `published: false`.
    pub draft: bool,
    /// Hugo's `publishDate` (or its aliases `publish_date`, `pubdate`, and
    /// `published` when it holds a date): not published before it.
    pub publish_date: Option<Dated>,
    /// Hugo's `expiryDate` (or its alias `unpublishdate`): published no
    /// longer from then on.
    pub expiry_date: Option<Dated>,
    /// `tags`, `categories` and Zola's `[taxonomies]`, in order, without duplicates.
    pub tags: Vec<String>,
    /// The same as Jekyll reads them: a `tags` or `categories` written as
    /// text (not a list) is words, `tags: release announcement` two tags.
    pub jekyll_tags: Vec<String>,
    /// `summary` or `description`.
    pub summary: Option<String>,
    pub slug: Option<String>,
    /// The post's own path on the site: Jekyll's `permalink`, Hugo's `url`
    /// (Zola's `path`), and the line it was written on.
    pub permalink: Option<(String, usize)>,
    /// `email`: how the post is mailed.
    pub mailing: Mailing,
}

/// How a post goes out by email (the `email` key).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Mailing {
    /// `email: digest` (the default): its excerpt in the next digest.
    #[default]
    Digest,
    /// `email: letter`: sent whole, as a message of its own.
    Letter,
    /// `email: only`: a letter that the feeds leave out (an email-only post).
    Only,
}

impl Mailing {
    /// A letter, with or without the feeds.
    pub fn is_letter(self) -> bool {
        self != Mailing::Digest
    }
}

/// A date value and the line it was written on.
#[derive(Debug, Clone, PartialEq)]
pub struct Dated {
    pub text: String,
    pub line: usize,
    pub key: &'static str,
}

/// Parses the front matter text; `first_line` is the line of `split.front`'s first line.
pub fn parse(split: &Split<'_>) -> Result<FrontMatter, LineError> {
    let map = match split.format {
        Format::Yaml => parse_yaml(split.front)?,
        Format::Toml => parse_toml(split.front)?,
    };
    let lines = KeyLines { front: split.front };
    let mut fm = FrontMatter {
        title: string_key(&map, "title", &lines)?,
        date: date_key(&map, &["created_at", "date"], &lines)?,
        updated: date_key(&map, &["updated", "lastmod", "last_modified_at"], &lines)?,
        summary: string_key(&map, "summary", &lines)?
            .or(string_key(&map, "description", &lines)?)
            .filter(|s| !s.is_empty()),
        slug: string_key(&map, "slug", &lines)?.filter(|s| !s.is_empty()),
        ..FrontMatter::default()
    };
    for key in ["permalink", "url", "path"] {
        if let Some(path) = string_key(&map, key, &lines)?.filter(|s| !s.is_empty()) {
            fm.permalink = Some((path, lines.find(key)));
            break;
        }
    }

    fm.mailing = match string_key(&map, "email", &lines)?.as_deref() {
        None | Some("digest") => Mailing::Digest,
        Some("letter") => Mailing::Letter,
        Some("only") => Mailing::Only,
        Some(other) => {
            return Err(LineError::new(
                lines.find("email"),
                format!(
                    "`email: {other}` is not a way to mail a post: write `email: letter` (sent whole, on its own), \
                     `email: only` (a letter the feeds leave out), or leave the key out (its excerpt goes in the digest)"
                ),
            ));
        }
    };

    for key in ["author_name", "author", "authors"] {
        for name in string_list(&map, key, &lines)? {
            if !fm.authors.contains(&name) {
                fm.authors.push(name);
            }
        }
    }

    // Jekyll's `published: false` is a draft; in Hugo `published` is an
    // alias of `publishDate`, a date.
    let jekyll_published = match lookup(&map, "published").map(|(_, v)| v) {
        Some(Value::String(s)) if !is_bool_text(s) => None,
        _ => bool_key(&map, "published", &lines)?,
    };
    fm.draft = bool_key(&map, "draft", &lines)?.unwrap_or(false) || jekyll_published == Some(false);
    fm.publish_date = match jekyll_published {
        None => date_key(
            &map,
            &["publishDate", "publish_date", "pubdate", "published"],
            &lines,
        )?,
        Some(_) => date_key(&map, &["publishDate", "publish_date", "pubdate"], &lines)?,
    };
    fm.expiry_date = date_key(
        &map,
        &["expiryDate", "expiry_date", "unpublishdate"],
        &lines,
    )?;

    let words = |key: &'static str| -> Result<Vec<String>, LineError> {
        Ok(match map.get(key) {
            Some(Value::String(text)) => text.split_whitespace().map(String::from).collect(),
            _ => string_list(&map, key, &lines)?,
        })
    };
    let mut tags = string_list(&map, "tags", &lines)?;
    let mut jekyll_tags = words("tags")?;
    if let Some(Value::Object(taxonomies)) = map.get("taxonomies") {
        tags.extend(string_list(taxonomies, "tags", &lines)?);
        tags.extend(string_list(taxonomies, "categories", &lines)?);
    }
    tags.extend(string_list(&map, "categories", &lines)?);
    jekyll_tags.extend(words("categories")?);
    for (all, found) in [(&mut fm.tags, tags), (&mut fm.jekyll_tags, jekyll_tags)] {
        for tag in found {
            if !all.contains(&tag) {
                all.push(tag);
            }
        }
    }
    Ok(fm)
}

fn parse_yaml(front: &str) -> Result<Map<String, Value>, LineError> {
    if front.trim().is_empty() {
        return Ok(Map::new());
    }
    let tolerant = tolerate_whitespace(front);
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&tolerant).map_err(|e| {
        let line = e.location().map_or(1, |l| l.line()) + 1;
        let what = e.to_string();
        let what = what.split(" at line ").next().unwrap_or(&what).to_string();
        // The parser's limits against alias bombs and runaway nesting.
        let fix = if what.contains("recursion limit") || what.contains("repetition limit") {
            "write the values out plainly, without deep nesting or many aliases (`*name`)"
        } else {
            "quote values that contain `: ` or start with a special character, \
             e.g. title: \"A: B\""
        };
        LineError::new(
            line,
            format!("YAML front matter is invalid ({what}); {fix}"),
        )
    })?;
    match yaml_to_json(value) {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(LineError::new(
            2,
            "front matter must be `key: value` lines, e.g. `title: My post`",
        )),
    }
}

/// Tabs and no-break spaces in indentation, and a no-break space after a key's
/// colon, are typing accidents YAML would refuse or keep; make them spaces.
fn tolerate_whitespace(front: &str) -> String {
    let mut out = String::with_capacity(front.len());
    for line in front.split_inclusive('\n') {
        let indent_len = line.len() - line.trim_start_matches([' ', '\t', '\u{a0}']).len();
        let (indent, rest) = line.split_at(indent_len);
        for c in indent.chars() {
            out.push_str(if c == '\t' { "  " } else { " " });
        }
        match rest.find(":\u{a0}").or_else(|| rest.find(":\t")) {
            Some(i) if !rest[..i].contains([' ', '"', '\'']) => {
                out.push_str(&rest[..=i]);
                out.push(' ');
                out.push_str(rest[i + 1..].trim_start_matches(['\u{a0}', '\t']));
            }
            _ => out.push_str(rest),
        }
    }
    out
}

fn yaml_to_json(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        // Kept as a number: `string_key` takes the text as written instead
        // (a title `1.10` must not become "1.1").
        Y::Number(n) => serde_json::to_value(&n).unwrap_or_else(|_| Value::String(n.to_string())),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(mapping) => Value::Object(
            mapping
                .into_iter()
                .filter_map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Number(n) => n.to_string(),
                        Y::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((key, yaml_to_json(v)))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

fn parse_toml(front: &str) -> Result<Map<String, Value>, LineError> {
    let table: toml::Table = toml::from_str(front).map_err(|e| {
        let line = e
            .span()
            .map_or(0, |s| front[..s.start].matches('\n').count())
            + 2;
        LineError::new(
            line,
            format!(
                "TOML front matter is invalid ({}); strings need quotes, e.g. title = \"My post\"",
                e.message().trim_end()
            ),
        )
    })?;
    Ok(table
        .into_iter()
        .map(|(k, v)| (k, toml_to_json(v)))
        .collect())
}

fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect())
        }
    }
}

/// Finds the line a key was written on, for messages about its value.
struct KeyLines<'a> {
    front: &'a str,
}

impl KeyLines<'_> {
    /// The value of a one-line `key: value` as written, without a comment.
    fn raw_value(&self, key: &str) -> Option<String> {
        let line = self.front.lines().nth(self.find(key).checked_sub(2)?)?;
        let (_, value) = line.split_once([':', '='])?;
        let value = value.split(" #").next().unwrap_or(value).trim();
        (!value.is_empty()).then(|| value.to_string())
    }

    fn find(&self, key: &str) -> usize {
        for (i, line) in self.front.lines().enumerate() {
            let line = line.trim_start_matches([' ', '\t', '\u{a0}']);
            if let Some(rest) = line.strip_prefix(key)
                && rest.trim_start().starts_with([':', '='])
            {
                return i + 2;
            }
        }
        2
    }
}

fn string_key(
    map: &Map<String, Value>,
    key: &'static str,
    lines: &KeyLines<'_>,
) -> Result<Option<String>, LineError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(Value::Number(n)) => Ok(Some(lines.raw_value(key).unwrap_or_else(|| n.to_string()))),
        Some(_) => Err(LineError::new(
            lines.find(key),
            format!("`{key}` must be a single text value; quote it, e.g. {key}: \"...\""),
        )),
    }
}

/// A key holding one name, a list of names, or Jekyll's `{name: ...}` objects.
fn string_list(
    map: &Map<String, Value>,
    key: &'static str,
    lines: &KeyLines<'_>,
) -> Result<Vec<String>, LineError> {
    fn name_of(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::Object(o) => o.get("name").and_then(name_of),
            _ => None,
        }
    }
    let items: Vec<Option<String>> = match map.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(name_of).collect(),
        Some(other) => vec![name_of(other)],
    };
    if items.iter().any(Option::is_none) {
        return Err(LineError::new(
            lines.find(key),
            format!("`{key}` must be a name or a list of names, e.g. {key}: [\"a\", \"b\"]"),
        ));
    }
    Ok(items
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect())
}

/// The value of `key` written in any letter case (Hugo reads `Draft`,
/// `publishdate` and `publishDate` alike), and the key as written.
fn lookup<'m>(map: &'m Map<String, Value>, key: &str) -> Option<(&'m str, &'m Value)> {
    map.get_key_value(key)
        .or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
        .map(|(k, v)| (k.as_str(), v))
}

fn is_bool_text(text: &str) -> bool {
    text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false")
}

/// A true/false key (`true`, `false`, or those words quoted).
fn bool_key(
    map: &Map<String, Value>,
    key: &'static str,
    lines: &KeyLines<'_>,
) -> Result<Option<bool>, LineError> {
    let Some((written, value)) = lookup(map, key) else {
        return Ok(None);
    };
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if is_bool_text(s) => Ok(Some(s.eq_ignore_ascii_case("true"))),
        other => Err(LineError::new(
            lines.find(written),
            format!("`{written}` must be true or false, not {other}"),
        )),
    }
}

fn date_key(
    map: &Map<String, Value>,
    keys: &[&'static str],
    lines: &KeyLines<'_>,
) -> Result<Option<Dated>, LineError> {
    for &key in keys {
        let Some((written, value)) = lookup(map, key) else {
            continue;
        };
        match value {
            Value::Null => continue,
            Value::String(s) => {
                return Ok(Some(Dated {
                    text: s.trim().to_string(),
                    line: lines.find(written),
                    key,
                }));
            }
            _ => {
                return Err(LineError::new(
                    lines.find(written),
                    format!(
                        "`{written}` must be a date such as 2017-09-04 or 2017-09-04T10:00:00Z"
                    ),
                ));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front(source: &str) -> Result<FrontMatter, LineError> {
        parse(&split(source)?)
    }

    #[test]
    fn an_alias_bomb_or_deep_nesting_is_refused_with_a_fitting_fix() {
        let mut bomb =
            String::from("---\ntitle: Bomb\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            bomb.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 9].join(", ")
            ));
        }
        bomb.push_str("---\n");
        let deep = format!(
            "---\ntitle: Deep\nx: {}{}\n---\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        for (source, limit) in [(bomb, "repetition limit"), (deep, "recursion limit")] {
            let err = front(&source).unwrap_err();
            assert!(err.message.contains(limit), "{}", err.message);
            assert!(
                err.message.contains("without deep nesting"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn prometheus_yaml() {
        let fm = front(
            "---\ntitle: \"Interview with L’Atelier: Animation\"\ncreated_at: 2017-06-14\n\
             kind: article\nauthor_name: Brian Brazil\n---\nbody",
        )
        .unwrap();
        assert_eq!(
            fm.title.as_deref(),
            Some("Interview with L’Atelier: Animation")
        );
        assert_eq!(fm.date.as_ref().unwrap().text, "2017-06-14");
        assert_eq!(fm.date.as_ref().unwrap().line, 3);
        assert_eq!(fm.authors, ["Brian Brazil"]);
        assert!(!fm.draft);
    }

    #[test]
    fn indented_keys_tabs_and_nbsp_are_tolerated() {
        let fm = front("---\n title: A\n created_at: 2017-06-22\n---\n").unwrap();
        assert_eq!(fm.title.as_deref(), Some("A"));
        let fm = front("---\ntitle:\tTabbed\n\tdraft: true\n---\n").unwrap_err();
        // A tab-indented key under a scalar is still a YAML error, with its line.
        assert_eq!(fm.line, 3);
        let fm = front("---\ntitle:\u{a0}No break\u{a0}\n---\n").unwrap();
        assert_eq!(fm.title.as_deref(), Some("No break"));
        let fm = front("---\ntitle:\tTabbed\n---\n").unwrap();
        assert_eq!(fm.title.as_deref(), Some("Tabbed"));
    }

    #[test]
    fn toml_front_matter_with_zola_taxonomies() {
        let fm = front(
            "+++\ntitle = \"Zola post\"\ndate = 2021-03-04T05:06:07+02:00\nauthors = [\"A\", \"B\"]\n\
             [taxonomies]\ntags = [\"x\", \"y\"]\n+++\nbody",
        )
        .unwrap();
        assert_eq!(fm.date.unwrap().text, "2021-03-04T05:06:07+02:00");
        assert_eq!(fm.authors, ["A", "B"]);
        assert_eq!(fm.tags, ["x", "y"]);
    }

    #[test]
    fn hugo_and_jekyll_keys() {
        let fm = front(
            "---\ntitle: Hugo\ndate: 2020-01-02 03:04:05 +0100\nlastmod: 2020-02-01\n\
             author: {name: Jane}\ndraft: true\ntags: [a, b]\ncategories: [b, c]\n\
             description: Short\nslug: custom\n---\n",
        )
        .unwrap();
        assert_eq!(fm.updated.unwrap().key, "lastmod");
        assert_eq!(fm.authors, ["Jane"]);
        assert!(fm.draft);
        assert_eq!(fm.tags, ["a", "b", "c"]);
        assert_eq!(fm.summary.as_deref(), Some("Short"));
        assert_eq!(fm.slug.as_deref(), Some("custom"));
    }

    #[test]
    fn numbers_keep_the_text_they_were_written_with() {
        let fm = front("---\ntitle: 1.10\nslug: 0x1F # hex\n---\n").unwrap();
        assert_eq!(fm.title.as_deref(), Some("1.10"));
        assert_eq!(fm.slug.as_deref(), Some("0x1F"));
        let fm = front("+++\ntitle = 1.10\n+++\n").unwrap();
        assert_eq!(fm.title.as_deref(), Some("1.10"));
    }

    #[test]
    fn unclosed_and_missing_front_matter() {
        let err = front("---\ntitle: x\n\nbody").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("never closed"), "{}", err.message);
        let err = front("# Just markdown").unwrap_err();
        assert!(err.message.contains("no front matter"));
    }

    #[test]
    fn syntax_errors_point_at_the_line() {
        let err =
            front("---\ntitle: ok\ncreated_at: 2017-01-01\nbad: [unclosed\n---\n").unwrap_err();
        assert!(err.line >= 4, "{err:?}");
        assert!(err.message.contains("YAML"), "{}", err.message);
        let err = front("+++\ntitle = \"ok\"\ndate = nope\n+++\n").unwrap_err();
        assert_eq!(err.line, 3, "{err:?}");
        assert!(err.message.contains("TOML"));
    }

    #[test]
    fn body_line_counts_the_front_matter() {
        let s = split("---\ntitle: a\n---\nfirst body line").unwrap();
        assert_eq!(s.body_line, 4);
        assert_eq!(s.body, "first body line");
        let s = split("---\n---").unwrap();
        assert_eq!(s.body, "");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = front("---\ntitle: [a, b]\n---\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("`title`"));
        let err = front("---\ntitle: a\ndraft: maybe\n---\n").unwrap_err();
        assert_eq!(err.line, 3);
    }
}

//! The email digest: which posts the next digest carries, and its subject,
//! HTML and plain-text bodies rendered from `templates/`.
//!
//! A digest is rendered once, not once per subscriber: what differs between
//! subscribers (their address, their name, their unsubscribe link) is left
//! in the output as merge tokens, and [`personalize`] fills them in for each
//! message with one pass over the text.
//!
//! # Template variables
//!
//! `digest.html`, `digest.txt` (minijinja, i.e. Jinja2 syntax, with
//! `trim_blocks` and `lstrip_blocks` on) and the `digest.subject` template
//! string all see:
//!
//! | variable | what it is |
//! | --- | --- |
//! | `site.title`, `site.url`, `site.description`, `site.language`, `site.author` | from `[site]`; `url` is `base_url` |
//! | `posts` | the posts with excerpts, newest first: the first `digest.max_posts` of the digest (in the subject: every post of the digest) |
//! | `post.title` | the title |
//! | `post.url` | the absolute permalink |
//! | `post.date` | the publication date, like `4 September 2017` |
//! | `post.date_iso` | the publication date, like `2017-09-04` |
//! | `post.author` | the authors joined by `, `, else `site.author` |
//! | `post.tags` | a list of tags |
//! | `post.excerpt_html` | the excerpt as HTML made for email: absolute URLs, no scripts, a YouTube video as a linked "▶ Watch the video" line, other iframes as links, tweets as quotes with their links; printed as it is (it is safe) |
//! | `post.excerpt_text` | the excerpt as plain text wrapped at 72 columns, links as `[1]` footnotes |
//! | `more_posts` | the posts beyond `digest.max_posts`, newest first, each with `title`, `url`, `date`, `date_iso`, `author`, `tags` (no excerpt); empty in the subject |
//! | `subscriber.email`, `subscriber.name` | who the message goes to (`name` may be empty) |
//! | `unsubscribe_url` | the subscriber's one-click unsubscribe link |
//! | `digest.id` | the digest's number |
//!
//! `subscriber.email`, `subscriber.name` and `unsubscribe_url` are values
//! to print, and only to print: when the templates are rendered they hold
//! placeholders that are replaced per message, so a test such as
//! `{% if subscriber.name %}` is always true and a filter such as `|upper`
//! or `|length` does not see the real value.
//!
//! In `digest.html` every printed value is HTML-escaped except
//! `excerpt_html`; a filter `wrap(width=72)` folds prose in `digest.txt`
//! without breaking words or URLs. The HTML is then given to css-inline:
//! the rules of its `<style>` blocks become `style` attributes and the
//! blocks go, as do any `<script>` elements.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use chrono::{DateTime, Utc};
use minijinja::context;
use minijinja::value::Value;
use serde::{Deserialize, Serialize};

use super::body::{email_excerpt, email_letter, inline_css, tidy_text};
use super::merge::{
    Choice, EMAIL, NAME, PREFERENCES_URL, PREHEADER, Personal, Region, SUBJECT, UNSUBSCRIBE_URL,
    clean, merge, select,
};
use crate::config::Config;
use crate::content::{self, Mailing, Post, PostStatus, Problem, Problems};
use crate::html::escape_text;
use crate::store::{
    Adoption, Announced, Kind, NewDigest, Plan, PostRef, Store, StoredDigest, Subscriber,
};
use crate::text::one_line;
use crate::topics::Topics;
use crate::{links, templates};

/// The HTML template's name (in `digest.templates`, else built in).
pub const HTML_TEMPLATE: &str = "digest.html";
/// The plain-text template's name (in `digest.templates`, else built in).
pub const TEXT_TEMPLATE: &str = "digest.txt";
/// A letter's HTML template.
pub const LETTER_HTML_TEMPLATE: &str = "letter.html";
/// A letter's plain-text template.
pub const LETTER_TEXT_TEMPLATE: &str = "letter.txt";

/// Why a digest could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("{location}: {message}; fix the template (its variables are listed in README.md)")]
    Template {
        /// `templates/digest.html:12`, or `digest.html (built in)`.
        location: String,
        message: String,
    },
    #[error("config key `digest.subject`: {message}")]
    Subject { message: String },
    #[error("{0}")]
    Post(Problem),
    #[error("{0}; fix them and send again (nothing was sent)")]
    Content(#[source] Problems),
    #[error("a digest needs at least one post")]
    NoPosts,
}

/// The posts for the next digest.
#[derive(Debug, Clone, Default)]
pub struct Chosen<'a> {
    /// To mail, newest first.
    pub posts: Vec<&'a Post>,
    /// To mark as announced without mailing them: on the first run, the
    /// published posts older than the newest `digest.first_run_posts`.
    pub skipped: Vec<&'a Post>,
    /// Posts announced under another file name (renamed, or recorded before
    /// the store knew posts by their file), found by a permalink their
    /// record holds: the record learns their file.
    pub adopted: Vec<Adoption>,
}

impl Chosen<'_> {
    /// True when there is nothing to mail.
    pub fn is_empty(&self) -> bool {
        self.posts.is_empty()
    }
}

/// Chooses the posts of the next digest: those published at `now` that no
/// earlier digest announced. `posts` come newest first. A post was announced
/// when a record holds its permalink (now, or before 0.3: see
/// [`Post::former_permalink`]; the URL readers know it by), or else holds
/// its file and date while that record's permalink belongs to no post now
/// (its permalink changed, its file did not). A record found either way
/// that says otherwise than the post now is `adopted`: it learns the post's
/// file, permalink and date, so it follows the post through any number of
/// renames and new permalink rules, one at a time. On the `first_run`, only
/// the newest `digest.first_run_posts` are mailed and the rest are
/// `skipped`, so a new newsletter on an old blog does not mail the whole
/// archive.
pub fn choose_posts<'a>(
    posts: &'a [Post],
    announced: &Announced,
    first_run: bool,
    config: &Config,
    now: DateTime<Utc>,
) -> Chosen<'a> {
    let permalinks: HashSet<&str> = posts.iter().map(|p| p.permalink.as_str()).collect();
    let mut fresh = Vec::new();
    let mut adopted = Vec::new();
    for post in posts
        .iter()
        .filter(|p| p.status(now) == PostStatus::Published)
    {
        let now_ref = post_ref(post);
        let by_permalink = [Some(&post.permalink), post.former_permalink.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|path| [path.clone(), url_path(&config.site.url_for(path))])
            .find_map(|form| announced.by_permalink.get(&form));
        let by_source = || {
            announced.by_source.get(&post.source).filter(|&&i| {
                let record = &announced.records[i];
                record
                    .published
                    .as_ref()
                    .is_none_or(|d| *d == now_ref.published)
                    && !permalinks.contains(record.permalink.as_str())
            })
        };
        match by_permalink.or_else(by_source) {
            Some(&i) => {
                let record = &announced.records[i];
                let current = record.source.as_deref() == Some(post.source.as_str())
                    && record.permalink == post.permalink
                    && record.published.as_deref() == Some(now_ref.published.as_str());
                if !current {
                    adopted.push(Adoption {
                        record: record.id,
                        post: now_ref,
                    });
                }
            }
            None => fresh.push(post),
        }
    }
    // Stable: posts of the same moment keep the order they came in.
    fresh.sort_by_key(|p| std::cmp::Reverse(p.published));
    if first_run {
        let keep = config.digest.first_run_posts.min(fresh.len());
        let skipped = fresh.split_off(keep);
        Chosen {
            posts: fresh,
            skipped,
            adopted,
        }
    } else {
        Chosen {
            posts: fresh,
            skipped: Vec::new(),
            adopted,
        }
    }
}

/// A digest rendered for every subscriber at once, with merge tokens where
/// the subscriber's values go (see [`personalize`]). Stored with the digest
/// so a resumed send mails exactly what the first attempt rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedDigest {
    pub subject: String,
    /// The HTML part, its CSS inlined.
    pub html: String,
    /// The plain-text part.
    pub text: String,
    /// The archive page: the HTML part naming nobody, its unsubscribe
    /// line a link to the sign-up form.
    pub page: String,
    /// Absolute URLs of every post in the digest, newest first.
    pub post_urls: Vec<String>,
    /// The copy of a reader who gets every post (choice 0), which trials
    /// show; `None` for mail without region marks (a welcome, a mailing
    /// made before topics), which is sent as it is.
    #[serde(skip)]
    pub whole: Option<Choice>,
}

/// One subscriber's copy of a rendered digest: the posts of their
/// `choice` (else of the whole digest), and their values put in place of
/// the merge tokens, HTML-escaped in the HTML part and as they are in the
/// subject and the text part.
pub fn personalize(
    digest: &RenderedDigest,
    choice: Option<&Choice>,
    email: &str,
    name: &str,
    unsubscribe_url: &str,
    preferences_url: &str,
) -> Personal {
    let choice = choice.or(digest.whole.as_ref());
    let (subject, preheader) = match choice {
        Some(c) => (c.subject.as_str(), c.preheader.as_str()),
        None => (digest.subject.as_str(), ""),
    };
    let plain = [
        email,
        name,
        unsubscribe_url,
        preferences_url,
        preheader,
        subject,
    ];
    let escaped = plain.map(escape_text);
    let escaped = escaped.each_ref().map(String::as_str);
    let part = |text: &str, values| match choice {
        Some(c) => merge(&select(text, c), values),
        None => merge(text, values),
    };
    Personal {
        subject: merge(subject, plain),
        html: part(&digest.html, escaped),
        text: part(&digest.text, plain),
    }
}

/// Renders the digest of `posts` (newest first): the subject from
/// `digest.subject`, the HTML part from `digest.html` with its CSS inlined,
/// the text part from `digest.txt`, and the archive page. The module
/// documentation lists the template variables.
pub fn render(
    config: &Config,
    posts: &[&Post],
    digest_id: i64,
) -> Result<RenderedDigest, DigestError> {
    Ok(render_digest(config, posts, digest_id)?.0)
}

/// [`render`], and what makes each reader's copy of the digest.
///
/// Each post's card (and its line under "Also new") is rendered once,
/// between region marks (`post.begin`, `post.end`), and the frame once
/// around them all; a reader's copy keeps the regions of their posts (see
/// [`select`]). With `[[topics]]`, every post is rendered both as a card
/// and as a line, so that each reader's first `digest.max_posts` posts
/// are cards whichever posts they get; without, the first
/// `digest.max_posts` are cards and the rest lines, for everyone.
fn render_digest(
    config: &Config,
    posts: &[&Post],
    digest_id: i64,
) -> Result<(RenderedDigest, Readers), DigestError> {
    if posts.is_empty() {
        return Err(DigestError::NoPosts);
    }
    let by_reader = !config.topics.is_empty();
    let cards = config.digest.max_posts.min(posts.len());
    let with_excerpts = if by_reader { posts.len() } else { cards };
    let mut values = Vec::with_capacity(posts.len());
    let mut preheaders = Vec::with_capacity(posts.len());
    for (i, post) in posts.iter().enumerate() {
        if i < with_excerpts {
            let excerpt = email_excerpt(config, post).map_err(DigestError::Post)?;
            preheaders.push(preheader_of(&excerpt.1));
            values.push(post_value(config, post, Some(excerpt)));
        } else {
            preheaders.push(String::new());
            values.push(post_value(config, post, None));
        }
    }
    let env = templates::environment(config);
    let subjects = Subjects::new(&env, config, digest_id)?;
    let subject = subjects.make(values.clone())?;
    let marked = |region: Region, value: &Value| {
        context! {
            begin => Value::from_safe_string(region.begin()),
            end => Value::from_safe_string(region.end()),
            ..value.clone()
        }
    };
    let card_values: Vec<Value> = values[..with_excerpts]
        .iter()
        .enumerate()
        .map(|(i, v)| marked(Region::Post(i), v))
        .collect();
    let listed_from = if by_reader { 0 } else { cards };
    let listed: Vec<Value> = values[listed_from..]
        .iter()
        .enumerate()
        .map(|(i, v)| marked(Region::MorePost(listed_from + i), v))
        .collect();
    let whole = Choice {
        posts: (0..posts.len()).collect(),
        cards,
        subject: subject.clone(),
        preheader: preheaders[0].clone(),
    };
    let posts_value = context! {
        posts => card_values,
        more_posts => listed,
        more_begin => Value::from_safe_string(Region::More.begin()),
        more_end => Value::from_safe_string(Region::More.end()),
    };
    let mut rendered = render_parts(
        config,
        &env,
        [HTML_TEMPLATE, TEXT_TEMPLATE],
        |archive| {
            // The subject and preheader name each reader's own posts:
            // merge tokens in mail, the whole digest's on its page.
            let (subject, preheader) = match archive {
                true => (subject.as_str(), whole.preheader.clone()),
                false => (SUBJECT, PREHEADER.to_string()),
            };
            context! {
                ..posts_value.clone(),
                ..mailing_context(config, Some(digest_id), subject, preheader, archive)
            }
        },
        subject.clone(),
        Some(&whole),
    )?;
    rendered.post_urls = posts
        .iter()
        .map(|p| config.site.url_for(&p.permalink))
        .collect();
    if by_reader {
        check_marks(config, &rendered)?;
    }
    rendered.whole = Some(whole.clone());
    let readers = Readers {
        kind: Kind::Digest,
        digest_id,
        topics: posts
            .iter()
            .map(|p| Topics::of_post(config, &p.tags))
            .collect(),
        values,
        preheaders,
        whole,
    };
    Ok((rendered, readers))
}

/// The subjects of a digest's copies, from `digest.subject`, compiled once.
struct Subjects<'e> {
    template: minijinja::Template<'e, 'e>,
    context: Value,
}

impl<'e> Subjects<'e> {
    fn new(
        env: &'e minijinja::Environment<'e>,
        config: &'e Config,
        digest_id: i64,
    ) -> Result<Subjects<'e>, DigestError> {
        let template = env
            .template_from_named_str("digest.subject", &config.digest.subject)
            .map_err(|e| DigestError::Subject {
                message: templates::describe(&e),
            })?;
        Ok(Subjects {
            template,
            context: mailing_context(config, Some(digest_id), "", String::new(), false),
        })
    }

    /// The subject of a copy with these posts.
    fn make(&self, posts: Vec<Value>) -> Result<String, DigestError> {
        let subject = self
            .template
            .render(context! {
                posts => posts,
                more_posts => Vec::<Value>::new(),
                ..self.context.clone()
            })
            .map_err(|e| DigestError::Subject {
                message: templates::describe(&e),
            })?;
        let subject = one_line(&subject);
        if subject.is_empty() {
            return Err(DigestError::Subject {
                message: "renders to an empty subject; make it print at least the site title"
                    .into(),
            });
        }
        Ok(subject)
    }
}

/// Refuses a digest whose templates do not mark each post: with
/// `[[topics]]` every post is rendered (as a card, and as a line under
/// "Also new") and each reader's copy keeps only theirs, so an unmarked
/// post would reach every reader. So each card must be marked, and a copy
/// with no post must name none of them.
fn check_marks(config: &Config, rendered: &RenderedDigest) -> Result<(), DigestError> {
    let nothing = Choice::default();
    for (name, part) in [
        (HTML_TEMPLATE, &rendered.html),
        (TEXT_TEMPLATE, &rendered.text),
    ] {
        let bare = select(part, &nothing);
        let cards_marked = (0..rendered.post_urls.len()).all(|i| {
            part.contains(&Region::Post(i).begin()) && part.contains(&Region::Post(i).end())
        });
        let none_unmarked = rendered
            .post_urls
            .iter()
            .all(|url| !bare.contains(url.as_str()) && !bare.contains(&escape_text(url)));
        if !(cards_marked && none_unmarked) {
            return Err(DigestError::Template {
                location: templates::locate(&config.digest.templates, name, None),
                message: "with [[topics]], each post of the `posts` loop must be marked: print \
                          {{ post.begin }} before it and {{ post.end }} after it (and the same in \
                          the `more_posts` loop, with {{ more_begin }} and {{ more_end }} around \
                          the whole list), as the built-in template does"
                    .into(),
            });
        }
    }
    Ok(())
}

/// What makes each reader's copy of a new mailing, by their topics: each
/// post's topics, the values its subject is made of and its preheader.
pub struct Readers {
    kind: Kind,
    digest_id: i64,
    topics: Vec<Topics>,
    values: Vec<Value>,
    preheaders: Vec<String>,
    whole: Choice,
}

impl Readers {
    /// Which copy readers with each of the `distinct` topic choices get
    /// (see [`Plan`]): those of their topics' posts and of the posts in
    /// no topic, or nothing when none is new. Readers whose topics give
    /// the same posts share a copy; each copy's subject is rendered once.
    pub fn plan(&self, config: &Config, distinct: &[Option<String>]) -> Result<Plan, DigestError> {
        let env = templates::environment(config);
        let subjects = match self.kind {
            Kind::Digest => Some(Subjects::new(&env, config, self.digest_id)?),
            Kind::Letter => None,
        };
        let mut choices = vec![self.whole.clone()];
        // A set of posts as bits: a small key for each of tens of thousands.
        let bits = |posts: &[usize]| {
            let mut set = vec![0u64; self.topics.len().div_ceil(64)];
            for &i in posts {
                set[i / 64] |= 1 << (i % 64);
            }
            set
        };
        let mut by_posts: HashMap<Vec<u64>, usize> = HashMap::from([(bits(&self.whole.posts), 0)]);
        let mut by_topics: HashMap<Topics, Option<usize>> = HashMap::new();
        let mut assigned = Vec::with_capacity(distinct.len());
        for stored in distinct {
            let reader = Topics::of_reader(config, stored.as_deref());
            if let Some(&choice) = by_topics.get(&reader) {
                assigned.push(choice);
                continue;
            }
            let posts: Vec<usize> = (0..self.topics.len())
                .filter(|&i| reader.gets(self.topics[i]))
                .collect();
            let key = bits(&posts);
            let choice = match (posts.first(), by_posts.get(&key)) {
                (None, _) => None,
                (Some(_), Some(&n)) => Some(n),
                (Some(&first), None) => {
                    let subject = match &subjects {
                        Some(subjects) => subjects
                            .make(posts.iter().map(|&i| self.values[i].clone()).collect())?,
                        None => self.whole.subject.clone(),
                    };
                    choices.push(Choice {
                        cards: self.whole.cards.min(posts.len()),
                        subject,
                        preheader: self.preheaders[first].clone(),
                        posts,
                    });
                    by_posts.insert(key, choices.len() - 1);
                    Some(choices.len() - 1)
                }
            };
            by_topics.insert(reader, choice);
            assigned.push(choice);
        }
        Ok(Plan { choices, assigned })
    }

    /// The copy each of `readers` gets, as [`Readers::plan`] decides it
    /// (`None`: nothing of it), for what a trial shows.
    pub fn copies(
        &self,
        config: &Config,
        readers: &[Subscriber],
    ) -> Result<Vec<Option<Choice>>, DigestError> {
        let topics: Vec<Option<String>> = readers.iter().map(|s| s.topics.clone()).collect();
        let plan = self.plan(config, &topics)?;
        Ok(plan
            .assigned
            .iter()
            .map(|a| a.map(|n| plan.choices[n].clone()))
            .collect())
    }
}

/// Renders a letter: `post` whole, as a message of its own, its title the
/// subject, from `letter.html` and `letter.txt`; and its archive page.
pub fn render_letter(
    config: &Config,
    post: &Post,
    mailing_id: i64,
) -> Result<RenderedDigest, DigestError> {
    Ok(render_letter_for_readers(config, post, mailing_id)?.0)
}

/// [`render_letter`], and what decides which readers get it: those of its
/// topics.
fn render_letter_for_readers(
    config: &Config,
    post: &Post,
    mailing_id: i64,
) -> Result<(RenderedDigest, Readers), DigestError> {
    let (html, text) = email_letter(config, post).map_err(DigestError::Post)?;
    let preheader = preheader_of(&text);
    let url = letter_url(config, post, mailing_id);
    let value = context! {
        content_html => Value::from_safe_string(html),
        content_text => text,
        url => url.clone(),
        ..post_value(config, post, None)
    };
    let subject = one_line(&clean(&post.title));
    let whole = Choice {
        posts: vec![0],
        cards: 1,
        subject: subject.clone(),
        preheader: preheader.clone(),
    };
    let env = templates::environment(config);
    let mut rendered = render_parts(
        config,
        &env,
        [LETTER_HTML_TEMPLATE, LETTER_TEXT_TEMPLATE],
        |archive| {
            context! {
                post => value.clone(),
                posts => vec![value.clone()],
                more_posts => Vec::<Value>::new(),
                ..mailing_context(config, Some(mailing_id), &subject, preheader.clone(), archive)
            }
        },
        subject.clone(),
        Some(&whole),
    )?;
    rendered.post_urls = vec![url];
    rendered.whole = Some(whole.clone());
    let readers = Readers {
        kind: Kind::Letter,
        digest_id: mailing_id,
        topics: vec![Topics::of_post(config, &post.tags)],
        values: Vec::new(),
        preheaders: vec![preheader],
        whole,
    };
    Ok((rendered, readers))
}

/// Where a letter's post is on the web: its permalink, or for an email-only
/// post (in no feed, on no page of the site) its archive page.
fn letter_url(config: &Config, post: &Post, mailing_id: i64) -> String {
    if post.mailing == Mailing::Only && config.archive.enabled {
        links::archive_page_url(config, mailing_id)
    } else {
        config.site.url_for(&post.permalink)
    }
}

/// What every mail template sees but its posts: `archive` is true for the
/// archive page, which names nobody and links the sign-up form where mail
/// links the unsubscribe page. `mailing_id` is `None` for mail that is no
/// mailing (the welcome): no number, no page of its own.
pub(super) fn mailing_context(
    config: &Config,
    mailing_id: Option<i64>,
    subject: &str,
    preheader: String,
    archive: bool,
) -> Value {
    let (email, name, unsubscribe, preferences) = if archive {
        ("", "", links::subscribe_url(config), "")
    } else {
        (EMAIL, NAME, UNSUBSCRIBE_URL.to_string(), PREFERENCES_URL)
    };
    let topics: Vec<Value> = config
        .topics
        .iter()
        .map(|t| context! { key => t.key.clone(), label => clean(&t.label) })
        .collect();
    let archived = |url: String| {
        if config.archive.enabled {
            url
        } else {
            String::new()
        }
    };
    context! {
        site => templates::site_context(config, clean),
        subscriber => context! { email => email, name => name },
        unsubscribe_url => unsubscribe,
        preferences_url => preferences,
        topics => topics,
        subscribe_url => links::subscribe_url(config),
        digest => context! { id => mailing_id },
        subject => subject,
        preheader => preheader,
        archive => archive,
        archive_url => mailing_id.map_or_else(String::new, |id| archived(links::archive_page_url(config, id))),
        archive_index_url => archived(links::archive_url(config)),
        archive_feed_url => archived(links::archive_feed_url(config)),
    }
}

/// The HTML part (CSS inlined), the text part and (with `page`, the copy
/// it shows) the archive page of a mail, from its two templates;
/// `context(archive)` gives the values.
pub(super) fn render_parts(
    config: &Config,
    env: &minijinja::Environment<'_>,
    [html_name, text_name]: [&str; 2],
    context: impl Fn(bool) -> Value,
    subject: String,
    page: Option<&Choice>,
) -> Result<RenderedDigest, DigestError> {
    let template_error = |e: minijinja::Error, name: &str| DigestError::Template {
        location: templates::locate(&config.digest.templates, name, Some(&e)),
        message: templates::describe(&e),
    };
    let render = |name: &str, archive: bool| {
        env.get_template(name)
            .and_then(|t| t.render(context(archive)))
            .map_err(|e| template_error(e, name))
    };
    let inline = |html: String| {
        inline_css(&html).map_err(|message| DigestError::Template {
            location: templates::locate(&config.digest.templates, html_name, None),
            message,
        })
    };
    let html = inline(render(html_name, false)?)?;
    let text = tidy_text(&render(text_name, false)?);
    // A template of an earlier version prints the subscriber's values
    // whatever `archive` says: the page gets none of them.
    let page = match page {
        Some(whole) => merge(
            &select(&inline(render(html_name, true)?)?, whole),
            ["", "", &links::subscribe_url(config), "", "", ""],
        ),
        None => String::new(),
    };
    Ok(RenderedDigest {
        subject,
        html,
        text,
        page,
        post_urls: Vec::new(),
        whole: None,
    })
}

/// The next mailing, rendered: a letter, or a digest of the other posts;
/// the posts it announces, those it marks announced without mailing them,
/// and the records of earlier ones that learn their file.
pub struct Next {
    pub kind: Kind,
    pub rendered: RenderedDigest,
    /// Who gets which copy of it.
    pub readers: Readers,
    pub posts: Vec<PostRef>,
    pub skipped: Vec<PostRef>,
    pub adopted: Vec<Adoption>,
}

/// The next mailing at `now`, numbered `digest_id`, or `None` when no post
/// is new. Without a store (nothing sent yet) it is the first. Letters go
/// first, the oldest first, each a mailing of its own; then a digest of the
/// other new posts.
pub fn next_digest(
    config: &Config,
    store: Option<&Store>,
    digest_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Next>> {
    Ok(upcoming(config, store, digest_id, now)?.0)
}

/// [`next_digest`], and the records to adopt when there is none.
fn upcoming(
    config: &Config,
    store: Option<&Store>,
    digest_id: i64,
    now: DateTime<Utc>,
) -> Result<(Option<Next>, Vec<Adoption>)> {
    let corpus = content::read_posts(config);
    if !corpus.problems.is_empty() {
        return Err(DigestError::Content(Problems(corpus.problems)).into());
    }
    let (announced, first) = match store {
        Some(store) => (store.announced()?, store.is_first_digest()?),
        None => (Announced::default(), true),
    };
    let chosen = choose_posts(&corpus.posts, &announced, first, config, now);
    let (letters, digest_posts): (Vec<&Post>, Vec<&Post>) =
        chosen.posts.iter().partition(|p| p.mailing.is_letter());
    // Newest first: the last letter is the oldest.
    let (kind, (rendered, readers), carried) = match letters.last() {
        Some(letter) => (
            Kind::Letter,
            render_letter_for_readers(config, letter, digest_id)?,
            vec![post_ref(letter)],
        ),
        None if digest_posts.is_empty() => return Ok((None, chosen.adopted)),
        None => (
            Kind::Digest,
            render_digest(config, &digest_posts, digest_id)?,
            digest_posts.iter().map(|p| post_ref(p)).collect(),
        ),
    };
    let next = Next {
        kind,
        rendered,
        readers,
        posts: carried,
        skipped: chosen.skipped.iter().map(|p| post_ref(p)).collect(),
        adopted: chosen.adopted,
    };
    Ok((Some(next), Vec::new()))
}

fn post_ref(post: &Post) -> PostRef {
    PostRef {
        source: post.source.clone(),
        permalink: post.permalink.clone(),
        published: post.published.to_rfc3339(),
        title: post.title.clone(),
        email_only: post.mailing == Mailing::Only,
    }
}

/// The path of an absolute URL (`https://host/blog/a/` → `/blog/a/`).
fn url_path(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_string(), |u| u.path().to_string())
}

/// Makes the next digest and its pending deliveries (one transaction), or
/// `None` when no post is new.
pub fn create_next_digest(
    config: &Config,
    store: &mut Store,
    now: DateTime<Utc>,
) -> Result<Option<StoredDigest>> {
    let (next, adopted) = upcoming(config, Some(store), store.next_digest_id()?, now)?;
    let Some(next) = next else {
        // Nothing new: a renamed post's record still learns its file now.
        store.adopt(&adopted)?;
        return Ok(None);
    };
    let rendered = &next.rendered;
    let (id, _) = store.create_digest(
        &NewDigest {
            kind: next.kind,
            subject: &rendered.subject,
            page: &rendered.page,
            html: &rendered.html,
            text: &rendered.text,
            posts: &next.posts,
            skipped: &next.skipped,
            adopted: &next.adopted,
        },
        |distinct| -> Result<Plan> { Ok(next.readers.plan(config, distinct)?) },
        now,
    )?;
    Ok(store.digest(id)?)
}

/// Which digest a trial (`preview`, `send --to`) shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trial {
    /// The digest an earlier run left unfinished, as it was rendered.
    Unfinished,
    /// The next digest: the posts no digest carried yet.
    Next,
    /// No post is new: the latest digest again, rendered anew with the
    /// templates as they are now, so a template change can be tried.
    Latest,
}

/// The digest a trial shows, its number, and which one it is; `None` when
/// there is no new post and no digest was ever made. Records nothing.
pub fn digest_to_try(
    config: &Config,
    store: Option<&Store>,
    now: DateTime<Utc>,
) -> Result<Option<(RenderedDigest, i64, Trial)>> {
    let Some(store) = store else {
        return Ok(next_digest(config, None, 1, now)?.map(|n| (n.rendered, 1, Trial::Next)));
    };
    if let Some(d) = store.unfinished_digest()? {
        return Ok(Some((RenderedDigest::stored(&d), d.id, Trial::Unfinished)));
    }
    let id = store.next_digest_id()?;
    if let Some(next) = next_digest(config, Some(store), id, now)? {
        return Ok(Some((next.rendered, id, Trial::Next)));
    }
    let Some(latest) = store.latest_digest()? else {
        return Ok(None);
    };
    Ok(Some((
        rerender(config, store, &latest)?,
        latest.id,
        Trial::Latest,
    )))
}

/// The post at `path` rendered as the letter it would be (whatever its
/// `email` key says), numbered as the next mailing; for `preview --letter`
/// and `send --to --letter`. Records nothing.
pub fn letter_to_try(
    config: &Config,
    store: Option<&Store>,
    path: &std::path::Path,
) -> Result<(RenderedDigest, i64)> {
    // A post is a file: not a folder, a device or a pipe (`/dev/zero`
    // would be read for ever).
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return Err(DigestError::Post(Problem {
            path: path.to_path_buf(),
            line: 0,
            message: "is not a post's file: give the path of a .md file (e.g. content/2026-11-24-note.md)"
                .into(),
        })
        .into());
    }
    let post = content::read_post(path, config).map_err(DigestError::Post)?;
    let id = match store {
        Some(store) => store.next_digest_id()?,
        None => 1,
    };
    Ok((render_letter(config, &post, id)?, id))
}

/// A digest rendered again from its posts with the current templates; as
/// it was stored when none of its posts can be found any more.
fn rerender(config: &Config, store: &Store, digest: &StoredDigest) -> Result<RenderedDigest> {
    let carried = store.digest_post_refs(digest.id)?;
    let sources: HashSet<&str> = carried.iter().filter_map(|(s, _)| s.as_deref()).collect();
    let permalinks: HashSet<&str> = carried.iter().map(|(_, p)| p.as_str()).collect();
    let corpus = content::read_posts(config);
    if !corpus.problems.is_empty() {
        return Err(DigestError::Content(Problems(corpus.problems)).into());
    }
    let mut posts: Vec<&Post> = corpus
        .posts
        .iter()
        .filter(|p| {
            sources.contains(p.source.as_str())
                || permalinks.contains(p.permalink.as_str())
                || permalinks.contains(config.site.url_for(&p.permalink).as_str())
        })
        .collect();
    posts.sort_by_key(|p| std::cmp::Reverse(p.published));
    match (posts.first(), digest.kind) {
        (None, _) => Ok(RenderedDigest::stored(digest)),
        (Some(letter), Kind::Letter) => Ok(render_letter(config, letter, digest.id)?),
        (Some(_), Kind::Digest) => Ok(render(config, &posts, digest.id)?),
    }
}

impl RenderedDigest {
    /// The rendering kept with a digest in the store.
    pub fn stored(digest: &StoredDigest) -> RenderedDigest {
        RenderedDigest {
            subject: digest.subject.clone(),
            html: digest.html.clone(),
            text: digest.text.clone(),
            page: String::new(),
            post_urls: Vec::new(),
            whole: digest.whole.clone(),
        }
    }
}

/// Renders every digest template once with a sample post, so a broken
/// template is reported by `check` and when `serve` starts, not at the
/// first digest.
pub fn check_templates(config: &Config) -> Result<(), DigestError> {
    let post = sample_post(config)?;
    render(config, &[&post], 1)?;
    render_letter(config, &post, 1)?;
    crate::archive::check_template(config)
}

/// A post to render templates with when checking them.
pub(super) fn sample_post(config: &Config) -> Result<Post, DigestError> {
    let sample = "---\ntitle: A sample post\ncreated_at: 2026-01-01\ntags: [sample]\n---\n\nThe excerpt, with [a link](https://example.org/).\n\n<!-- more -->\n\nThe rest.\n";
    content::parse_post(sample, std::path::Path::new("sample.md"), config).map_err(|e| {
        DigestError::Template {
            location: format!("sample.md:{}", e.line),
            message: e.message,
        }
    })
}

/// The preheader inbox lists show after the subject: the start of the
/// first excerpt's text on one line, without its link notes, cut between
/// words near [`PREHEADER_CHARS`] characters.
fn preheader_of(excerpt_text: &str) -> String {
    let prose: Vec<&str> = excerpt_text
        .lines()
        .take_while(|line| !line.starts_with("[1]: "))
        .collect();
    let line = one_line(&prose.join(" "));
    // Link notes (`[the docs][1]`) mean nothing in an inbox list: the
    // text stays, the marks go.
    let mut words = Vec::new();
    let mut length = 0;
    for word in line.split(' ') {
        let word = strip_note_marks(word);
        if word.is_empty() {
            continue;
        }
        if length + word.chars().count() > PREHEADER_CHARS && !words.is_empty() {
            words.push("…".to_string());
            break;
        }
        length += word.chars().count() + 1;
        words.push(word);
    }
    words.join(" ")
}

/// How long a preheader is at most, about: inbox lists show 40 to 140.
const PREHEADER_CHARS: usize = 140;

/// `word` without html2text's link marks: the note number (`[1]`) and the
/// brackets around a link's text.
fn strip_note_marks(word: &str) -> String {
    let mut out = word.to_string();
    while let Some(start) = out.find('[') {
        match out[start..].find(']') {
            Some(end)
                if out[start + 1..start + end]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    && end > 1 =>
            {
                out.replace_range(start..start + end + 1, "");
            }
            _ => break,
        }
    }
    out.replace(['[', ']'], "")
}

/// A post's template variables; `excerpt` is its (HTML, text) excerpt.
pub(crate) fn post_value(config: &Config, post: &Post, excerpt: Option<(String, String)>) -> Value {
    let site = &config.site;
    let author = if post.authors.is_empty() {
        clean(&site.author)
    } else {
        clean(&post.authors.join(", "))
    };
    let tags: Vec<String> = post.tags.iter().map(|t| clean(t)).collect();
    let base = context! {
        title => clean(&post.title),
        url => site.url_for(&post.permalink),
        date => post.published.format("%-d %B %Y").to_string(),
        date_iso => post.published.format("%Y-%m-%d").to_string(),
        author => author,
        tags => tags,
    };
    match excerpt {
        Some((html, text)) => context! {
            excerpt_html => Value::from_safe_string(html),
            excerpt_text => text,
            ..base
        },
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::path::Path;

    use lol_html::{RewriteStrSettings, element, rewrite_str};

    use crate::content::parse_post;
    use crate::email::merge::{EMAIL, NAME, OPEN, UNSUBSCRIBE_URL};
    use crate::text::TEXT_WIDTH;

    const SITE: &str =
        "[site]\ntitle = \"Tëst & <Blog>\"\nbase_url = \"https://blog.example.org\"\n";

    /// A config whose templates are the project's own `templates/`.
    fn config_with(extra: &str) -> Config {
        Config::parse(
            &format!("{SITE}{extra}"),
            Path::new("config.toml"),
            Path::new(env!("CARGO_MANIFEST_DIR")),
        )
        .unwrap()
    }

    fn config() -> Config {
        config_with("")
    }

    fn post(config: &Config, name: &str, front: &str, body: &str) -> Post {
        parse_post(
            &format!("---\n{front}\n---\n{body}"),
            Path::new(name),
            config,
        )
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2024-06-01T00:00:00Z".parse().unwrap()
    }

    fn personal(digest: &RenderedDigest) -> Personal {
        personalize(
            digest,
            None,
            "ann@example.org",
            "Ann",
            "https://blog.example.org/unsubscribe/t0k",
            "https://blog.example.org/preferences/t0k",
        )
    }

    /// Newest first: three published posts, a draft and a scheduled one.
    fn archive(config: &Config) -> Vec<Post> {
        vec![
            post(config, "2024-07-01-later.md", "title: Later", "Not yet."),
            post(config, "2024-05-03-c.md", "title: C", "Third."),
            post(
                config,
                "2024-05-02-draft.md",
                "title: D\ndraft: true",
                "Draft.",
            ),
            post(config, "2024-05-02-b.md", "title: B", "Second."),
            post(config, "2024-05-01-a.md", "title: A", "First."),
        ]
    }

    fn titles(posts: &[&Post]) -> Vec<String> {
        posts.iter().map(|p| p.title.clone()).collect()
    }

    #[test]
    fn deeply_nested_excerpts_render_quickly_without_overflowing_the_stack() {
        // 25,000 nested <em><strong> overflowed the stack (the tree walks
        // that make the email HTML and text recurse once per level), and
        // 50,000 nested lists or quotes took minutes (html5ever's tree
        // building is quadratic in the depth).
        let config = config();
        let n = 50_000;
        for body in [
            format!("{}x{}", "*".repeat(n), "*".repeat(n)),
            format!("{}x\n", "* ".repeat(n)),
            format!("{} x\n", ">".repeat(n)),
            format!("{}x<!-- more -->y{}", "<div>".repeat(n), "</div>".repeat(n)),
        ] {
            let started = std::time::Instant::now();
            let posts = [post(&config, "2024-05-01-deep.md", "title: Deep", &body)];
            let digest = render(&config, &[&posts[0]], 1).unwrap();
            assert!(digest.text.contains('x'), "{}", digest.text);
            assert!(
                started.elapsed().as_secs() < 30,
                "{:?} for {}",
                started.elapsed(),
                &body[..20]
            );
        }
    }

    #[test]
    fn chooses_published_posts_not_yet_announced_newest_first() {
        let config = config();
        let posts = archive(&config);
        let chosen = choose_posts(&posts, &Announced::default(), false, &config, now());
        assert_eq!(titles(&chosen.posts), ["C", "B", "A"]);
        assert!(chosen.skipped.is_empty());

        let record = |id: i64, source: Option<&str>, permalink: &str, published: Option<&str>| {
            crate::store::Record {
                id,
                source: source.map(str::to_string),
                permalink: permalink.to_string(),
                published: published.map(str::to_string),
            }
        };
        let date = |p: &Post| p.published.to_rfc3339();
        let [_later, c, _draft, b, a] = &posts[..] else {
            panic!("five posts")
        };

        // Known by permalink (a record from before 0.3, which knew no
        // files, as an absolute URL's path): the record learns the rest.
        let announced = Announced::new(vec![
            record(1, None, "/blog/2024/05/03/c/", None),
            // A's file and date, but the permalink of B, a post there now:
            // B's record (B was at A's file name once), not A's.
            record(
                2,
                Some(a.source.as_str()),
                "/blog/2024/05/02/b/",
                Some(&date(a)),
            ),
        ]);
        let chosen = choose_posts(&posts, &announced, false, &config, now());
        assert_eq!(titles(&chosen.posts), ["A"]);
        let learned: Vec<(i64, &str)> = chosen
            .adopted
            .iter()
            .map(|a| (a.record, a.post.source.as_str()))
            .collect();
        assert_eq!(learned, [(1, c.source.as_str()), (2, b.source.as_str())]);

        // Known by file and date when its permalink changed (a new rule)...
        let announced = Announced::new(vec![record(
            1,
            Some(c.source.as_str()),
            "/old/c/",
            Some(&date(c)),
        )]);
        let chosen = choose_posts(&posts, &announced, false, &config, now());
        assert_eq!(titles(&chosen.posts), ["B", "A"]);
        assert_eq!(chosen.adopted.len(), 1);
        assert_eq!(chosen.adopted[0].post.permalink, c.permalink);
        // ...but a post of another date at that file name is new.
        let announced = Announced::new(vec![record(
            1,
            Some(c.source.as_str()),
            "/old/c/",
            Some("2020-01-01T00:00:00+00:00"),
        )]);
        let chosen = choose_posts(&posts, &announced, false, &config, now());
        assert_eq!(titles(&chosen.posts), ["C", "B", "A"]);

        // Known as it is now: nothing to learn.
        let announced = Announced::new(
            posts
                .iter()
                .enumerate()
                .map(|(i, p)| record(i as i64, Some(&p.source), &p.permalink, Some(&date(p))))
                .collect(),
        );
        let chosen = choose_posts(&posts, &announced, false, &config, now());
        assert!(chosen.is_empty() && chosen.adopted.is_empty());
    }

    #[test]
    fn first_run_mails_the_newest_and_skips_the_archive() {
        let config = config();
        let posts = archive(&config);
        let chosen = choose_posts(&posts, &Announced::default(), true, &config, now());
        assert_eq!(titles(&chosen.posts), ["C"]);
        assert_eq!(titles(&chosen.skipped), ["B", "A"]);

        let config = config_with("[digest]\nfirst_run_posts = 0\n");
        let chosen = choose_posts(&posts, &Announced::default(), true, &config, now());
        assert!(chosen.posts.is_empty());
        assert_eq!(chosen.skipped.len(), 3);

        let config = config_with("[digest]\nfirst_run_posts = 5\n");
        let chosen = choose_posts(&posts, &Announced::default(), true, &config, now());
        assert_eq!(chosen.posts.len(), 3);
        assert!(chosen.skipped.is_empty());
    }

    #[test]
    fn renders_subject_html_and_text_once_with_merge_tokens() {
        let config = config();
        let posts = archive(&config);
        let chosen = choose_posts(&posts, &Announced::default(), false, &config, now());
        let digest = render(&config, &chosen.posts, 42).unwrap();
        assert_eq!(digest.subject, "Tëst & <Blog>: C and 2 more");
        assert_eq!(
            digest.post_urls,
            [
                "https://blog.example.org/blog/2024/05/03/c/",
                "https://blog.example.org/blog/2024/05/02/b/",
                "https://blog.example.org/blog/2024/05/01/a/",
            ]
        );
        assert!(digest.html.contains(UNSUBSCRIBE_URL) && digest.html.contains(EMAIL));
        assert!(digest.text.contains(UNSUBSCRIBE_URL) && digest.text.contains(EMAIL));

        let mail = personal(&digest);
        assert!(!mail.html.contains(OPEN) && !mail.text.contains(OPEN));
        // Site values are escaped in HTML and plain in text.
        assert!(
            mail.html.contains("Tëst &amp; &lt;Blog&gt;"),
            "{}",
            mail.html
        );
        assert!(
            mail.text
                .starts_with("View in browser: https://blog.example.org/archive/"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("\n\nTëst & <Blog>\n"), "{}", mail.text);
        // The archive page names nobody: no merge token, no unsubscribe
        // link, the sign-up form instead; and no "View in browser".
        assert!(!digest.page.contains(OPEN), "{}", digest.page);
        assert!(!digest.page.contains("/unsubscribe/") && !digest.page.contains("View in browser"));
        assert!(
            digest
                .page
                .contains("href=\"https://blog.example.org/subscribe\"")
        );
        assert!(mail.html.contains(">View in browser</a>"));
        assert!(mail.html.contains("<html lang=\"en\""));
        assert!(
            mail.html
                .contains("href=\"https://blog.example.org/unsubscribe/t0k\"",)
        );
        assert!(mail.html.contains("at ann@example.org."));
        let text_end: Vec<&str> = mail.text.lines().rev().take(2).collect();
        assert_eq!(
            text_end,
            [
                "Tëst & <Blog>: https://blog.example.org/",
                "Unsubscribe: https://blog.example.org/unsubscribe/t0k"
            ]
        );
        for post in ["C", "B", "A"] {
            assert!(mail.text.contains(&format!("\n{post}\n")), "{}", mail.text);
        }
        assert!(
            mail.text
                .contains("Read more: https://blog.example.org/blog/2024/05/03/c/")
        );
        assert!(mail.html.contains("Read more"));
    }

    /// How many elements `selector` matches, as a browser parses the HTML.
    fn count_elements(html: &str, selector: &str) -> usize {
        let count = Cell::new(0);
        let settings =
            RewriteStrSettings::new().append_element_content_handler(element!(selector, |_| {
                count.set(count.get() + 1);
                Ok(())
            }));
        rewrite_str(html, settings).unwrap();
        count.get()
    }

    #[test]
    fn html_part_has_inlined_css_and_no_style_or_script() {
        let config = config();
        let posts = archive(&config);
        let digest = render(&config, &[&posts[1]], 1).unwrap();
        let html = &digest.html;
        assert_eq!(count_elements(html, "style, script"), 0, "{html}");
        assert!(
            !html.contains("<style") && !html.contains("<script"),
            "{html}"
        );
        assert!(html.contains("style=\"") && html.contains("max-width: 600px"));
        assert!(html.contains("role=\"presentation\""));
        assert!(html.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn post_titles_and_markup_cannot_break_out_of_the_template() {
        let config = config();
        let evil = post(
            &config,
            "2024-05-01-evil.md",
            "title: \"</a><script>alert(1)</script> \\\"quoted\\\" & \\uE000email\\uE001\"\ntags: [\"<b>t</b>\"]",
            "Text <b>bold</td></tr></table></div><div><a href=\"/x\">unclosed\n\n<style>p{color:red}</style><script>alert(2)</script>\n\n<!-- more -->\n\nRest.",
        );
        let digest = render(&config, &[&evil], 1).unwrap();
        let mail = personal(&digest);
        let html = &mail.html;
        assert_eq!(count_elements(html, "script, style, iframe"), 0, "{html}");
        assert!(!html.contains("alert(2)"), "{html}");
        // Escaped in text; in an attribute only `&` and `"` need to be.
        assert!(
            html.contains(
                ">&lt;/a&gt;&lt;script&gt;alert(1)&lt;/script&gt; \"quoted\" &amp; email</a></h2>"
            ),
            "{html}"
        );
        // The token characters were removed from the title: the address is
        // printed only where the template asks for it.
        assert_eq!(html.matches("ann@example.org").count(), 1, "{html}");
        assert_eq!(mail.text.matches("ann@example.org").count(), 1);
        // The stray end tags were dropped and the open ones closed inside
        // the excerpt: the read-more link and the footer are where they were.
        let excerpt_start = html.find("class=\"excerpt\"").unwrap();
        let excerpt = &html[excerpt_start..html.find("Read more").unwrap()];
        assert!(excerpt.contains("unclosed"), "{excerpt}");
        assert_eq!(
            excerpt.matches("<div").count() + 1,
            excerpt.matches("</div>").count(),
            "{excerpt}"
        );
        assert_eq!(
            html.matches("<table").count(),
            html.matches("</table>").count()
        );
        assert_eq!(html.matches("<td").count(), html.matches("</td>").count());
        assert!(html.find("Unsubscribe").unwrap() > html.find("Read more").unwrap());
    }

    #[test]
    fn merge_token_characters_cannot_join_a_handler_or_a_tag() {
        let config = config();
        let evil = post(
            &config,
            "2024-05-01-evil.md",
            "title: t",
            "<div o\u{E000}nclick=\"alert(1)\">a <\u{E001}img src=x onerror=alert(2)></div>\n\n<!-- more -->\n\nRest.",
        );
        let html = personal(&render(&config, &[&evil], 1).unwrap()).html;
        assert!(html.contains(">a "), "the excerpt is the raw HTML: {html}");
        assert!(
            !html.contains("onclick") && !html.contains("onerror"),
            "{html}"
        );
    }

    #[test]
    fn excerpts_are_made_for_mail_clients() {
        let config = config();
        let body = r#"Intro with [docs](/docs/) and ![a cat](cat.png) and <img src="/dog.png">.

<iframe width="560" height="315" src="https://www.youtube.com/embed/dQw4w9WgXcQ?rel=0" title="PromCon talk" allowfullscreen></iframe>

<iframe src="https://player.example.net/v/1" title="A demo"></iframe>

<blockquote class="twitter-tweet"><p lang="en">Feeds are back.</p>&mdash; A Person (@aperson) <a href="https://twitter.com/aperson/status/1">May 1, 2024</a></blockquote> <script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>

<video src="/clip.mp4" controls></video>

<!-- more -->

Rest."#;
        let p = post(&config, "2024-05-01-embeds.md", "title: Embeds", body);
        let digest = render(&config, &[&p], 1).unwrap();
        let html = &digest.html;
        assert!(
            !html.contains("<iframe") && !html.contains("<script") && !html.contains("<video"),
            "{html}"
        );
        assert!(
            html.contains("href=\"https://blog.example.org/docs/\""),
            "{html}"
        );
        assert!(
            html.contains(
                "src=\"https://blog.example.org/blog/2024/05/01/embeds/cat.png\" alt=\"a cat\""
            ),
            "{html}"
        );
        assert!(
            html.contains("src=\"https://blog.example.org/dog.png\" alt=\"Image from “Embeds”\""),
            "{html}"
        );
        let video = html.find("<p class=\"video\"").expect("a video line");
        let line = &html[video..html[video..].find("</p>").unwrap() + video];
        assert!(
            line.contains("href=\"https://www.youtube.com/watch?v=dQw4w9WgXcQ\""),
            "{line}"
        );
        assert!(
            line.contains("▶ Watch the video: PromCon talk</a>"),
            "{line}"
        );
        assert!(!html.contains("i.ytimg.com"), "{html}");
        assert!(
            html.contains("href=\"https://player.example.net/v/1\"")
                && html.contains(">A demo</a>")
        );
        assert!(
            html.contains("<blockquote class=\"twitter-tweet\""),
            "{html}"
        );
        assert!(html.contains("href=\"https://twitter.com/aperson/status/1\""));
        assert!(
            html.contains("<a href=\"https://blog.example.org/clip.mp4\""),
            "{html}"
        );
        assert!(!html.contains("Rest."));

        let text = &digest.text;
        assert!(text.contains("[▶ Watch the video: PromCon talk]"), "{text}");
        assert!(
            text.contains("https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
            "{text}"
        );
        assert!(text.contains("> Feeds are back."), "{text}");
        assert!(
            text.contains("https://twitter.com/aperson/status/1"),
            "{text}"
        );
        assert!(!text.contains("widgets.js"));
    }

    #[test]
    fn a_hidden_preheader_gives_inbox_lists_the_first_excerpt() {
        let config = config();
        let words = "word ".repeat(60);
        let body = format!("See [the docs](/docs/) first. {words}\n\n<!-- more -->\n\nRest.\n");
        let p = post(&config, "2024-05-01-pre.md", "title: Pre", &body);
        let html = personal(&render(&config, &[&p], 1).unwrap()).html;
        let document = scraper::Html::parse_document(&html);
        let body = document
            .select(&scraper::Selector::parse("body").unwrap())
            .next()
            .unwrap();
        let first = body
            .children()
            .find_map(scraper::ElementRef::wrap)
            .expect("an element in the body");
        assert_eq!(first.value().attr("class"), Some("preheader"), "{html}");
        let style = first.value().attr("style").unwrap_or("").replace(' ', "");
        assert!(style.contains("display:none"), "{style}");
        let text: String = first.text().collect();
        assert!(
            text.starts_with("See the docs first. word word"),
            "{text:?}"
        );
        assert!(
            text.ends_with('…') && text.chars().count() <= 145,
            "{text:?}"
        );
        assert!(!text.contains('[') && !text.contains("http"), "{text:?}");
    }

    #[test]
    fn an_image_with_a_fixed_width_and_height_keeps_its_aspect_ratio() {
        let config = config();
        // As the Prometheus blog's 2016 interview with Life360 has it.
        let body = "[<img src=\"/logo.png\" style=\"width: 444px; height:177px\"/>](https://www.life360.com/)\n\n<img src=\"/tall.png\" style=\"height: 90px\">\n\n<!-- more -->\n\nRest.\n";
        let p = post(&config, "2016-03-23-logo.md", "title: Logo", body);
        let html = render(&config, &[&p], 1).unwrap().html;
        let document = scraper::Html::parse_fragment(&html);
        let styles: Vec<String> = document
            .select(&scraper::Selector::parse("img").unwrap())
            .map(|img| img.value().attr("style").unwrap_or("").replace(' ', ""))
            .collect();
        assert_eq!(styles.len(), 2, "{html}");
        // Width capped by the digest's CSS, so the height must follow it.
        assert!(styles[0].contains("width:444px"), "{styles:?}");
        assert!(styles[0].contains("max-width:100%"), "{styles:?}");
        assert!(styles[0].contains("height:auto"), "{styles:?}");
        assert!(!styles[0].contains("177px"), "{styles:?}");
        // A height alone scales the image down; it stays.
        assert!(styles[1].contains("height:90px"), "{styles:?}");
    }

    #[test]
    fn a_video_inside_a_paragraph_stays_inline() {
        let config = config();
        let body = "Look: <iframe src=\"https://www.youtube.com/embed/abc_-1\"></iframe> here.\n\n<!-- more -->\n";
        let p = post(&config, "2024-05-01-inline.md", "title: Inline", body);
        let html = render(&config, &[&p], 1).unwrap().html;
        assert!(!html.contains("class=\"video\""), "{html}");
        // The last: the hidden preheader starts with the same words.
        let start = html.rfind("Look: ").expect("the paragraph");
        let paragraph = &html[start..start + html[start..].find("</p>").unwrap()];
        assert!(
            paragraph.contains("href=\"https://www.youtube.com/watch?v=abc_-1\""),
            "{paragraph}"
        );
        assert!(
            paragraph.contains(">▶ Watch the video on YouTube</a> here."),
            "{paragraph}"
        );
    }

    #[test]
    fn posts_beyond_max_posts_are_listed_as_linked_titles() {
        let config = config_with("[digest]\nmax_posts = 2\n");
        let posts = archive(&config);
        let chosen = choose_posts(&posts, &Announced::default(), false, &config, now());
        let digest = render(&config, &chosen.posts, 3).unwrap();
        // The subject counts every post, not only those with excerpts.
        assert_eq!(digest.subject, "Tëst & <Blog>: C and 2 more");
        let html = &digest.html;
        assert!(html.contains("Third.") && html.contains("Second.") && !html.contains("First."));
        let also = html.find("Also new").expect("the list of more posts");
        assert!(html[also..].contains("href=\"https://blog.example.org/blog/2024/05/01/a/\""));
        assert!(html[also..].contains(">A</a>"));
        let text = &digest.text;
        assert!(!text.contains("First."));
        assert!(
            text.contains("* A\n  1 May 2024: https://blog.example.org/blog/2024/05/01/a/"),
            "{text}"
        );
        assert_eq!(digest.post_urls.len(), 3);
    }

    #[test]
    fn text_part_is_wrapped_without_breaking_urls() {
        let config = config();
        let long_url = format!("https://example.org/{}", "x/".repeat(50));
        let body = format!(
            "{} see {long_url} and [a link]({long_url}y).\n\n* {}\n\n<!-- more -->\n",
            "word ".repeat(40),
            "item ".repeat(30)
        );
        let p = post(&config, "2024-05-01-long.md", "title: Long", &body);
        let text = render(&config, &[&p], 1).unwrap().text;
        for line in text.lines() {
            assert!(
                line.chars().count() <= TEXT_WIDTH || line.split(' ').any(|w| w.len() > 60),
                "{line:?} in\n{text}"
            );
        }
        assert!(text.contains(&long_url), "{text}");
        assert!(text.contains(&format!("[1]: {long_url}y")), "{text}");
        assert!(text.contains("\n* item item"), "{text}");
        assert!(text.contains("\n  item item"), "{text}");
    }

    fn templates(html: &str, text: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HTML_TEMPLATE), html).unwrap();
        std::fs::write(dir.path().join(TEXT_TEMPLATE), text).unwrap();
        let config = Config::parse(
            &format!("{SITE}[digest]\ntemplates = {:?}\n", dir.path()),
            Path::new("config.toml"),
            dir.path(),
        )
        .unwrap();
        (dir, config)
    }

    #[test]
    fn with_topics_a_template_that_leaves_a_post_unmarked_is_refused() {
        const TOPIC: &str = "[[topics]]\nkey = \"r\"\nlabel = \"R\"\ntags = [\"r\"]\n";
        let marked =
            "{% for post in posts %}{{ post.begin }}{{ post.url }}{{ post.end }}{% endfor %}";
        let listed = "{% for post in more_posts %}{{ post.url }}{% endfor %}";
        let listed_marked = "{{ more_begin }}{% for post in more_posts %}{{ post.begin }}{{ post.url }}{{ post.end }}{% endfor %}{{ more_end }}";
        let plain = "{% for post in posts %}{{ post.url }}{% endfor %}";
        let render_with = |html: &str, text: &str| {
            let (dir, _) = templates(html, text);
            let config = Config::parse(
                &format!("{SITE}[digest]\ntemplates = {:?}\n{TOPIC}", dir.path()),
                Path::new("config.toml"),
                dir.path(),
            )
            .unwrap();
            let a = post(&config, "2024-05-02-a.md", "title: A", "a");
            let b = post(&config, "2024-05-01-b.md", "title: B\ntags: [r]", "b");
            render(&config, &[&a, &b], 1).map(|_| ())
        };
        let both = format!("{marked}{listed_marked}");
        assert!(render_with(&both, &both).is_ok());
        for (html, text) in [
            (plain.to_string(), both.clone()),
            (both.clone(), plain.to_string()),
            (format!("{marked}{listed}"), both.clone()),
        ] {
            let err = render_with(&html, &text).unwrap_err().to_string();
            assert!(err.contains("{{ post.begin }}"), "{err}");
        }
    }

    #[test]
    fn personalize_escapes_in_html_only() {
        let digest = RenderedDigest {
            subject: format!("Hi {NAME}"),
            html: format!("<p>{NAME} {EMAIL}</p><a href=\"{UNSUBSCRIBE_URL}\">u</a>"),
            text: format!("{NAME} <{EMAIL}>\n{UNSUBSCRIBE_URL}\n"),
            page: String::new(),
            post_urls: vec![],
            whole: None,
        };
        let mail = personalize(
            &digest,
            None,
            "o'neil@example.org",
            "Bob <b> & Co",
            "https://x.org/u/1?a=1&b=2",
            "https://x.org/p/1",
        );
        assert_eq!(mail.subject, "Hi Bob <b> & Co");
        assert_eq!(
            mail.html,
            "<p>Bob &lt;b&gt; &amp; Co o&#39;neil@example.org</p><a href=\"https://x.org/u/1?a=1&amp;b=2\">u</a>"
        );
        assert_eq!(
            mail.text,
            "Bob <b> & Co <o'neil@example.org>\nhttps://x.org/u/1?a=1&b=2\n"
        );
    }

    #[test]
    fn without_a_templates_folder_the_built_in_templates_render_the_same() {
        let project = config();
        let p = archive(&project).remove(1);
        let bare = config_with("[digest]\ntemplates = \"no-such-folder\"\n");
        let built_in = render(&bare, &[&p], 1).unwrap();
        assert_eq!(built_in, render(&project, &[&p], 1).unwrap());
        assert!(built_in.html.contains(&p.title), "{}", built_in.html);
        check_templates(&bare).unwrap();
    }

    #[test]
    fn template_errors_name_the_file_and_line() {
        let config = config();
        let p = archive(&config).remove(1);

        let (dir, config) = templates("<p>\n{{ site.title }}\n{% for p in posts %}\n", "x");
        let err = render(&config, &[&p], 1).unwrap_err().to_string();
        let file = dir.path().join("digest.html");
        assert!(err.starts_with(&format!("{}:", file.display())), "{err}");
        assert!(err.contains("syntax error"), "{err}");

        let (dir, config) = templates("<p>ok</p>", "line one\n{{ posts[0].titel }}\n");
        let err = render(&config, &[&p], 1).unwrap_err().to_string();
        let file = dir.path().join("digest.txt");
        assert!(err.starts_with(&format!("{}:2:", file.display())), "{err}");
        assert!(err.contains("undefined"), "{err}");

        let (_dir, config) = templates("<p>ok</p>", "{% include \"missing.txt\" %}");
        let err = render(&config, &[&p], 1).unwrap_err().to_string();
        assert!(
            err.contains("missing.txt") || err.contains("digest.txt"),
            "{err}"
        );
    }

    #[test]
    fn subject_errors_name_the_config_key() {
        let config = config_with("[digest]\nsubject = \"{{ posts[0].title \"\n");
        let p = archive(&config).remove(1);
        let err = render(&config, &[&p], 1).unwrap_err().to_string();
        assert!(
            err.starts_with("config key `digest.subject`: syntax error"),
            "{err}"
        );
        let config = config_with("[digest]\nsubject = \"{{ nothing }}\"\n");
        let err = render(&config, &[&p], 1).unwrap_err().to_string();
        assert!(
            err.contains("digest.subject") && err.contains("undefined"),
            "{err}"
        );
        let config = config_with(
            "[digest]\nsubject = \"{{ site.title }}\\n{{ posts[0].title }}\\r\\nBcc: x@y.org\"\n",
        );
        let digest = render(&config, &[&p], 1).unwrap();
        assert_eq!(digest.subject, "Tëst & <Blog> C Bcc: x@y.org");
        assert!(matches!(render(&config, &[], 1), Err(DigestError::NoPosts)));
    }

    #[test]
    fn includes_come_from_the_templates_folder_and_text_is_tidied() {
        let (dir, config) = templates(
            "{% include \"footer.html\" %}<style>p { color: #123456 }</style><p>{{ posts[0].title }}</p>",
            "{{ digest.id }}  \n\n\n\n{% for p in posts %}\n- {{ p.title }}\n{% endfor %}\n\n\n",
        );
        std::fs::write(dir.path().join("footer.html"), "<p>{{ site.title }}</p>").unwrap();
        let p = archive(&config).remove(1);
        let digest = render(&config, &[&p], 9).unwrap();
        assert!(
            digest
                .html
                .contains("<p style=\"color: #123456;\">Tëst &amp; &lt;Blog&gt;</p>"),
            "{}",
            digest.html
        );
        assert_eq!(digest.text, "9\n\n- C\n");
    }

    #[test]
    fn the_project_blog_renders_with_absolute_links_only() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = Config::load(&dir.join("config.toml")).unwrap();
        let corpus = crate::content::read_posts(&config);
        assert!(corpus.problems.is_empty(), "{:?}", corpus.problems);
        let now: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let chosen = choose_posts(&corpus.posts, &Announced::default(), false, &config, now);
        assert_eq!(chosen.posts.len(), 4, "no draft, nothing scheduled");
        let digest = render(&config, &chosen.posts, 1).unwrap();
        let mail = personal(&digest);
        for attr in ["href=\"", "src=\""] {
            for value in mail.html.split(attr).skip(1) {
                assert!(
                    value.starts_with("https://"),
                    "{attr}{}",
                    &value[..value.len().min(60)]
                );
            }
        }
        assert!(
            mail.subject
                .starts_with("Newsletter Blog: Bring your Hugo posts")
        );
        assert!(!mail.html.contains("Draft") && !mail.html.contains("1.0 is here"));
    }
}

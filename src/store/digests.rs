//! Digests as made, and the posts they announced.
//!
//! A post is announced once: by the digest that carried it, or (for the
//! posts already there when the first digest is made) passed over, so a new
//! list does not start with the whole archive. The store knows an announced
//! post by its file under `content.dir` and by its permalink then, so a
//! post whose permalink changes (or whose file is renamed) is not mailed
//! again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, StoreError, timestamp};

/// What a mailing is: a digest of excerpts, or a letter (one post, whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Digest,
    Letter,
}

impl Kind {
    /// As the store writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Digest => "digest",
            Kind::Letter => "letter",
        }
    }

    fn parse(text: &str) -> Kind {
        if text == "letter" {
            Kind::Letter
        } else {
            Kind::Digest
        }
    }
}

/// A mailing (digest or letter) as stored: rendered once, with merge
/// tokens for what differs per subscriber. Digests and letters are one
/// numbered sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDigest {
    pub id: i64,
    pub kind: Kind,
    pub created_at: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    /// Choice 0, the whole mailing (`None` for mailings made before
    /// topics, which have no region marks).
    pub whole: Option<Choice>,
}

/// A post as the store remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PostRef {
    /// The post's file under `content.dir` (`/` between folders).
    pub source: String,
    /// Its site path.
    pub permalink: String,
    /// Its own date, RFC 3339.
    pub published: String,
    /// Its title, for the archive.
    pub title: String,
    /// `email: only`: in no feed, its web page is its mailing's.
    pub email_only: bool,
}

/// What one reader's copy of a mailing carries, fixed when the mailing is
/// made: the positions of its posts in the mailing (ascending), how many
/// of the first of them are shown whole (the rest are listed as "Also
/// new"), and the subject and preheader that name them. Choice 0 of a
/// mailing is the whole of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Choice {
    pub posts: Vec<usize>,
    pub cards: usize,
    pub subject: String,
    pub preheader: String,
}

impl Choice {
    /// The posts as the store writes them: `0 2 5`.
    fn posts_text(&self) -> String {
        let positions: Vec<String> = self.posts.iter().map(usize::to_string).collect();
        positions.join(" ")
    }

    /// A choice from the store's columns `posts, cards, subject, preheader`
    /// at `first`; `None` where the columns are NULL (no choice).
    pub(super) fn from_row(
        r: &rusqlite::Row<'_>,
        first: usize,
    ) -> rusqlite::Result<Option<Choice>> {
        let Some(posts) = r.get::<_, Option<String>>(first)? else {
            return Ok(None);
        };
        Ok(Some(Choice {
            posts: posts.split(' ').filter_map(|p| p.parse().ok()).collect(),
            cards: r.get::<_, i64>(first + 1)? as usize,
            subject: r.get(first + 2)?,
            preheader: r.get(first + 3)?,
        }))
    }
}

/// Which reader gets which copy of a new mailing: its choices (choice 0,
/// the whole mailing, first), and for each distinct `subscribers.topics`
/// value the store gave, in that order, the choice readers with it get
/// (`None`: nothing of it, their delivery is `skipped`).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub choices: Vec<Choice>,
    pub assigned: Vec<Option<usize>>,
}

impl Plan {
    /// Every reader gets the whole mailing (a plan for tests).
    #[cfg(test)]
    pub fn everyone(distinct: &[Option<String>]) -> Result<Plan, StoreError> {
        Ok(Plan {
            choices: vec![Choice::default()],
            assigned: vec![Some(0); distinct.len()],
        })
    }
}

/// A digest to create, and the posts it announces.
#[derive(Debug, Clone)]
pub struct NewDigest<'a> {
    pub kind: Kind,
    pub subject: &'a str,
    /// The archive page.
    pub page: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    /// The posts it carries.
    pub posts: &'a [PostRef],
    /// Older posts to mark as announced without mailing them.
    pub skipped: &'a [PostRef],
    /// Announced posts whose record no longer says where they are now.
    pub adopted: &'a [Adoption],
}

/// An announced post found under another file name or permalink than its
/// record holds (renamed, a new permalink rule, a record from before the
/// store knew files): the record learns both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The record.
    pub record: i64,
    /// The post as it is now.
    pub post: PostRef,
}

/// One post an earlier digest announced (or passed over).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub id: i64,
    /// `None` in records made before 0.3.
    pub source: Option<String>,
    /// A site path (an absolute URL in stores of early versions, given
    /// here as its path).
    pub permalink: String,
    /// `None` in records made before 0.3.
    pub published: Option<String>,
}

/// What earlier digests announced, found by permalink and by file.
#[derive(Debug, Clone, Default)]
pub struct Announced {
    pub records: Vec<Record>,
    pub by_permalink: HashMap<String, usize>,
    pub by_source: HashMap<String, usize>,
}

impl Announced {
    /// The records as given, indexed.
    pub fn new(records: Vec<Record>) -> Announced {
        let mut announced = Announced::default();
        for (i, record) in records.iter().enumerate() {
            announced
                .by_permalink
                .entry(record.permalink.clone())
                .or_insert(i);
            if let Some(source) = &record.source {
                announced.by_source.insert(source.clone(), i);
            }
        }
        announced.records = records;
        announced
    }
}

/// The path of a permalink that early versions stored as an absolute URL.
fn site_path(permalink: &str) -> String {
    match permalink
        .strip_prefix("https://")
        .or_else(|| permalink.strip_prefix("http://"))
    {
        Some(rest) => rest
            .find('/')
            .map_or("/".to_string(), |at| rest[at..].to_string()),
        None => permalink.to_string(),
    }
}

impl Store {
    /// What was carried by a digest or passed over by the first one.
    pub fn announced(&self) -> Result<Announced, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT id, source, permalink, published FROM announced ORDER BY id")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |r| {
                Ok(Record {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    permalink: site_path(&r.get::<_, String>(2)?),
                    published: r.get(3)?,
                })
            })
            .map_err(|e| self.error(e))?;
        let records = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        Ok(Announced::new(records))
    }

    /// True before the first digest is made.
    pub fn is_first_digest(&self) -> Result<bool, StoreError> {
        let any: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM announced LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.error(e))?;
        Ok(any.is_none())
    }

    /// The id the next digest will get (valid while the send lock is held).
    pub fn next_digest_id(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) + 1 FROM digests", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.error(e))
    }

    /// One digest.
    pub fn digest(&self, id: i64) -> Result<Option<StoredDigest>, StoreError> {
        self.conn
            .query_row(
                "SELECT d.id, d.kind, d.created_at, d.subject, d.html, d.text, \
                 c.posts, c.cards, c.subject, c.preheader FROM digests d \
                 LEFT JOIN choices c ON c.digest_id = d.id AND c.id = 0 WHERE d.id = ?1",
                [id],
                digest_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// The oldest digest that still has pending deliveries.
    pub fn unfinished_digest(&self) -> Result<Option<StoredDigest>, StoreError> {
        self.conn
            .query_row(
                "SELECT d.id, d.kind, d.created_at, d.subject, d.html, d.text, \
                 c.posts, c.cards, c.subject, c.preheader FROM digests d \
                 LEFT JOIN choices c ON c.digest_id = d.id AND c.id = 0 WHERE d.id = \
                 (SELECT min(digest_id) FROM deliveries WHERE status = 'pending')",
                [],
                digest_row,
            )
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Writes a digest, marks its posts (and the skipped ones) announced, and
    /// adds one pending delivery per active subscriber: all in one
    /// transaction. Returns the digest's id and how many deliveries it has.
    ///
    /// `plan` is given the distinct topic choices of the active subscribers
    /// (read in the same transaction, so no choice changes in between)
    /// and says which copy each gets; its error ends the transaction and
    /// is returned. The count returned leaves out skipped deliveries.
    pub fn create_digest<E: From<StoreError>>(
        &mut self,
        digest: &NewDigest<'_>,
        plan: impl FnOnce(&[Option<String>]) -> Result<Plan, E>,
        now: DateTime<Utc>,
    ) -> Result<(i64, usize), E> {
        let mut planned = Some(plan);
        let mut refused = None;
        let made = self.transaction(|tx| {
            let distinct = distinct_topics(tx)?;
            let plan = planned.take().expect("the transaction body runs once");
            match plan(&distinct) {
                Ok(plan) => create_digest(tx, digest, &distinct, &plan, now),
                Err(e) => {
                    refused = Some(e);
                    Err(rusqlite::Error::ExecuteReturnedResults)
                }
            }
        });
        match (made, refused) {
            (_, Some(e)) => Err(e),
            (made, None) => Ok(made?),
        }
    }

    /// Drops what each reader's copy of a finished mailing carried (one
    /// row per distinct set of posts: tens of thousands with many topics),
    /// keeping choice 0, the whole mailing; nothing while a delivery of it
    /// is pending, which a resume still needs.
    pub fn forget_choices(&self, digest_id: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM choices WHERE digest_id = ?1 AND id <> 0 AND NOT EXISTS \
                 (SELECT 1 FROM deliveries WHERE digest_id = ?1 AND status = 'pending')",
                [digest_id],
            )
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Records learn where their posts are now; see [`NewDigest::adopted`].
    pub fn adopt(&mut self, posts: &[Adoption]) -> Result<(), StoreError> {
        if posts.is_empty() {
            return Ok(());
        }
        self.transaction(|tx| adopt(tx, posts))
    }

    /// How many posts a digest carries.
    pub fn digest_posts(&self, digest_id: i64) -> Result<usize, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM announced WHERE digest_id = ?1",
                [digest_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.error(e))
    }

    /// The posts a digest carried (not those it only marked announced on
    /// the first run): their files (`None` in records made before 0.3) and
    /// permalinks.
    pub fn digest_post_refs(
        &self,
        digest_id: i64,
    ) -> Result<Vec<(Option<String>, String)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT source, permalink FROM announced WHERE digest_id = ?1 ORDER BY id")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([digest_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// The digest made last, if any.
    pub fn latest_digest(&self) -> Result<Option<StoredDigest>, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM digests", [], |r| r.get(0))
            .map_err(|e| self.error(e))?;
        match id {
            Some(id) => self.digest(id),
            None => Ok(None),
        }
    }
}

/// A mailing as the archive lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub id: i64,
    pub kind: Kind,
    pub created_at: String,
    pub subject: String,
    /// The posts it carried, in the order it did: (title, permalink,
    /// email-only); the title is `None` in records made before the archive.
    pub posts: Vec<(Option<String>, String, bool)>,
}

impl Store {
    /// Every mailing, newest first, with the posts it carried.
    pub fn archived(&self) -> Result<Vec<Archived>, StoreError> {
        let mut mailings: Vec<Archived> = {
            let mut statement = self
                .conn
                .prepare("SELECT id, kind, created_at, subject FROM digests ORDER BY id DESC")
                .map_err(|e| self.error(e))?;
            let rows = statement
                .query_map([], |r| {
                    Ok(Archived {
                        id: r.get(0)?,
                        kind: Kind::parse(&r.get::<_, String>(1)?),
                        created_at: r.get(2)?,
                        subject: r.get(3)?,
                        posts: Vec::new(),
                    })
                })
                .map_err(|e| self.error(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.error(e))?
        };
        let index: HashMap<i64, usize> = mailings
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id, i))
            .collect();
        let mut statement = self
            .conn
            .prepare(
                "SELECT digest_id, title, permalink, email_only FROM announced \
                 WHERE digest_id IS NOT NULL ORDER BY id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    site_path(&r.get::<_, String>(2)?),
                    r.get::<_, bool>(3)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        for row in rows {
            let (id, title, permalink, email_only) = row.map_err(|e| self.error(e))?;
            if let Some(&i) = index.get(&id) {
                mailings[i].posts.push((title, permalink, email_only));
            }
        }
        Ok(mailings)
    }

    /// The byte length of each mailing's stored archive page (`None`
    /// where it has none), without reading the pages.
    pub fn archive_page_lengths(&self) -> Result<HashMap<i64, Option<u64>>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT id, octet_length(page) FROM digests")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .map_err(|e| self.error(e))?;
        rows.map(|row| row.map(|(id, n)| (id, n.map(|n| n as u64))))
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(e))
    }

    /// A mailing's archive page as stored (`None` for those made before
    /// 0.9), and its HTML part with merge tokens, to make one from.
    pub fn archive_page(&self, id: i64) -> Result<Option<(Option<String>, String)>, StoreError> {
        self.conn
            .query_row("SELECT page, html FROM digests WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.error(e))
    }
}

/// The distinct `topics` of the active subscribers.
fn distinct_topics(tx: &Transaction<'_>) -> Result<Vec<Option<String>>, rusqlite::Error> {
    let mut statement =
        tx.prepare("SELECT DISTINCT topics FROM subscribers WHERE status = 'active'")?;
    let rows = statement.query_map([], |r| r.get(0))?;
    rows.collect()
}

fn create_digest(
    tx: &Transaction<'_>,
    digest: &NewDigest<'_>,
    distinct: &[Option<String>],
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<(i64, usize), rusqlite::Error> {
    let at = timestamp(now);
    tx.execute(
        "INSERT INTO digests (kind, created_at, subject, html, text, page) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            digest.kind.as_str(),
            at,
            digest.subject,
            digest.html,
            digest.text,
            digest.page
        ],
    )?;
    let id = tx.last_insert_rowid();
    adopt(tx, digest.adopted)?;
    // A new post at the file name of an older one: the older one's record
    // keeps its permalink and gives up the name.
    let mut release = tx.prepare("UPDATE announced SET source = NULL WHERE source = ?1")?;
    let mut insert = tx.prepare(
        "INSERT INTO announced (source, permalink, published, digest_id, announced_at, title, \
         email_only) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (post, digest_id) in digest
        .posts
        .iter()
        .map(|p| (p, Some(id)))
        .chain(digest.skipped.iter().map(|p| (p, None)))
    {
        release.execute([&post.source])?;
        insert.execute(params![
            post.source,
            post.permalink,
            post.published,
            digest_id,
            at,
            post.title,
            post.email_only
        ])?;
    }
    drop((release, insert));
    let mut choice = tx.prepare(
        "INSERT INTO choices (digest_id, id, posts, cards, subject, preheader) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (n, c) in plan.choices.iter().enumerate() {
        choice.execute(params![
            id,
            n as i64,
            c.posts_text(),
            c.cards as i64,
            c.subject,
            c.preheader
        ])?;
    }
    drop(choice);
    // Each reader's choice by their topics, through a table of the
    // distinct ones (NULL, every topic, as `*`, which no key is).
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS assigned (topics TEXT PRIMARY KEY, choice INTEGER); \
         DELETE FROM temp.assigned;",
    )?;
    let mut assign =
        tx.prepare("INSERT OR IGNORE INTO temp.assigned (topics, choice) VALUES (?1, ?2)")?;
    for (topics, choice) in distinct.iter().zip(&plan.assigned) {
        assign.execute(params![
            topics.as_deref().unwrap_or("*"),
            choice.map(|c| c as i64)
        ])?;
    }
    drop(assign);
    let deliveries = tx.execute(
        "INSERT INTO deliveries (digest_id, subscriber_id, status, updated_at, choice) \
         SELECT ?1, s.id, 'pending', ?2, a.choice FROM subscribers s \
         JOIN temp.assigned a ON a.topics = coalesce(s.topics, '*') \
         WHERE s.status = 'active' AND a.choice IS NOT NULL",
        params![id, at],
    )?;
    tx.execute(
        "INSERT INTO deliveries (digest_id, subscriber_id, status, updated_at) \
         SELECT ?1, s.id, 'skipped', ?2 FROM subscribers s \
         LEFT JOIN temp.assigned a ON a.topics = coalesce(s.topics, '*') \
         WHERE s.status = 'active' AND a.choice IS NULL",
        params![id, at],
    )?;
    tx.execute("DELETE FROM temp.assigned", [])?;
    Ok((id, deliveries))
}

fn adopt(tx: &Transaction<'_>, posts: &[Adoption]) -> Result<(), rusqlite::Error> {
    // Two passes, so records can trade file names (a renamed to c, b to a).
    for adoption in posts {
        tx.execute(
            "UPDATE announced SET source = NULL WHERE id = ?1 OR source = ?2",
            params![adoption.record, adoption.post.source],
        )?;
    }
    for adoption in posts {
        tx.execute(
            "UPDATE announced SET source = ?1, permalink = ?2, published = ?3, title = ?4 \
             WHERE id = ?5",
            params![
                adoption.post.source,
                adoption.post.permalink,
                adoption.post.published,
                adoption.post.title,
                adoption.record
            ],
        )?;
    }
    Ok(())
}

fn digest_row(r: &rusqlite::Row<'_>) -> Result<StoredDigest, rusqlite::Error> {
    Ok(StoredDigest {
        id: r.get(0)?,
        kind: Kind::parse(&r.get::<_, String>(1)?),
        created_at: r.get(2)?,
        subject: r.get(3)?,
        html: r.get(4)?,
        text: r.get(5)?,
        whole: Choice::from_row(r, 6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, store};
    use crate::store::{Counts, Outcome, Status, StatusChange};

    #[test]
    fn a_digest_gets_one_pending_delivery_per_active_subscriber() {
        let (_dir, mut store) = store();
        for (email, status) in [
            ("a@x.org", Status::Active),
            ("b@x.org", Status::Pending),
            ("c@x.org", Status::Active),
            ("d@x.org", Status::Unsubscribed),
        ] {
            store.add_subscriber(email, "", status, now()).unwrap();
        }
        assert!(store.is_first_digest().unwrap());
        let post = |n: u32| PostRef {
            source: format!("{n}.md"),
            permalink: format!("/p/{n}/"),
            published: "2026-11-01T00:00:00+00:00".into(),
            title: "A".into(),
            email_only: false,
        };
        let posts = vec![post(1)];
        let skipped = vec![post(0)];
        let (id, n) = store
            .create_digest(
                &NewDigest {
                    kind: Default::default(),
                    page: "",
                    subject: "S",
                    html: "H",
                    text: "T",
                    posts: &posts,
                    skipped: &skipped,
                    adopted: &[],
                },
                Plan::everyone,
                now(),
            )
            .unwrap();
        assert_eq!(n, 2);
        assert!(!store.is_first_digest().unwrap());
        let announced = store.announced().unwrap();
        assert_eq!(announced.records.len(), 2);
        assert_eq!(announced.by_permalink.len(), 2);
        assert!(announced.by_source.contains_key("1.md"));
        assert_eq!(store.unfinished_digest().unwrap().unwrap().id, id);

        let pending = store.pending(id, 0, 10, now()).unwrap();
        assert_eq!(
            pending.iter().map(|p| p.email.as_str()).collect::<Vec<_>>(),
            ["a@x.org", "c@x.org"]
        );
        let sent = Outcome::Sent("250 ok".into());
        store
            .record(id, &[(pending[0].subscriber_id, sent)], now())
            .unwrap();
        // c leaves before their message goes out: cancelled, not mailed.
        let c = store.subscriber("c@x.org").unwrap().unwrap();
        store
            .change_status(c.id, StatusChange::Unsubscribe, now())
            .unwrap();
        assert!(store.pending(id, 0, 10, now()).unwrap().is_empty());
        assert_eq!(
            store.counts(id).unwrap(),
            Counts {
                pending: 0,
                sent: 1,
                failed: 0,
                cancelled: 1,
                skipped: 0
            }
        );
        assert!(store.unfinished_digest().unwrap().is_none());
    }
}

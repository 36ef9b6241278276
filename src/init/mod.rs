//! `newsletter init`: a new site from the binary alone — `config.toml`
//! with every key listed, and `content/` with one example post. The
//! templates stay built in unless asked for (`--templates`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use crate::atomic::stage_file;
use crate::templates::BUILT_IN;

/// The config file written, every section and key listed.
const CONFIG: &str = include_str!("config.toml");
/// The example post; `DATE` becomes the day it is written.
const WELCOME: &str = include_str!("welcome.md");

/// The files `init` wrote, relative to its folder.
#[derive(Debug)]
pub struct Initialized {
    pub dir: PathBuf,
    pub files: Vec<String>,
    /// `content/` held posts already (a site of another generator): no
    /// example post was added to them.
    pub kept_content: bool,
}

/// True when `dir` holds a Markdown file anywhere below it.
fn has_posts(dir: &Path) -> bool {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_type().is_file()
                && matches!(
                    e.path().extension().and_then(|x| x.to_str()),
                    Some("md" | "markdown")
                )
        })
}

/// Writes a new site into `dir` (created if missing): `config.toml`, the
/// example post `content/DATE-welcome.md`, and with `templates` a copy of
/// every built-in template in `templates/`. Refuses, writing nothing, if
/// any of those files exists.
pub fn init(dir: &Path, templates: bool, now: DateTime<Utc>) -> Result<Initialized> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{} is a file, not a folder; nothing was written (name a new or existing folder)",
            dir.display()
        );
    }
    let date = now.format("%Y-%m-%d").to_string();
    let mut files: Vec<(String, String)> = vec![("config.toml".into(), CONFIG.to_string())];
    // An example post among real ones would be the first digest's news.
    let kept_content = has_posts(&dir.join("content"));
    if !kept_content {
        files.push((
            format!("content/{date}-welcome.md"),
            WELCOME.replace("DATE", &date),
        ));
    }
    if templates {
        files.extend(
            BUILT_IN
                .iter()
                .map(|(name, text)| (format!("templates/{name}"), text.to_string())),
        );
    }
    write_new(dir, &files)?;
    Ok(Initialized {
        dir: dir.to_path_buf(),
        files: files.into_iter().map(|(name, _)| name).collect(),
        kept_content,
    })
}

/// Copies every built-in template into `folder` (a site's
/// `digest.templates`), for `init --templates` in a site that has its
/// config. Refuses, writing nothing, if any of those files exists.
pub fn copy_templates(folder: &Path) -> Result<Vec<PathBuf>> {
    if folder.exists() && !folder.is_dir() {
        bail!(
            "{} (digest.templates) is a file, not a folder; nothing was written",
            folder.display()
        );
    }
    let files: Vec<(String, String)> = BUILT_IN
        .iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    write_new(folder, &files)?;
    Ok(files
        .into_iter()
        .map(|(name, _)| folder.join(name))
        .collect())
}

/// Writes each `(name, text)` under `dir`, all or none: refuses, writing
/// nothing, when one of them exists or a file stands where a folder goes.
fn write_new(dir: &Path, files: &[(String, String)]) -> Result<()> {
    // A file at a path init writes, or where it needs a folder.
    let mut existing: Vec<String> = Vec::new();
    for (name, _) in files {
        let path = dir.join(name);
        let blocked = path
            .ancestors()
            .take_while(|p| p.starts_with(dir) && *p != dir)
            .find(|p| {
                let is_target = *p == path;
                (is_target && (p.exists() || p.is_symlink()))
                    || (!is_target && (p.is_symlink() || (p.exists() && !p.is_dir())))
            });
        if let Some(p) = blocked {
            let shown = p.display().to_string();
            if !existing.contains(&shown) {
                existing.push(shown);
            }
        }
    }
    if !existing.is_empty() {
        bail!(
            "{} already exist{}; nothing was written (init never overwrites a file: run it in an empty folder, or move {} away)",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" },
            if existing.len() == 1 { "it" } else { "them" }
        );
    }
    // Every file complete beside its place before the first is renamed in.
    let mut staged = Vec::with_capacity(files.len());
    for (name, text) in files {
        let path = dir.join(name);
        let file = stage_file(&path, |w| w.write_all(text.as_bytes()))?
            .with_context(|| format!("{} appeared while init ran", path.display()))?;
        staged.push(file);
    }
    // Never over a file that appeared meanwhile (another init, say).
    for file in staged {
        file.commit_new()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn now() -> DateTime<Utc> {
        "2026-12-02T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_config_written_is_valid_and_lists_every_section() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), false, now()).unwrap();
        let config = Config::load(&dir.path().join("config.toml")).unwrap();
        assert_eq!(config.site.title, "My Blog");
        assert!(config.smtp.is_empty(), "mail goes to the outbox");
        for section in [
            "[site]",
            "[content]",
            "[feeds]",
            "[email]",
            "[email.dkim]",
            "[digest]",
            "[store]",
            "[smtp]",
            "[server]",
            "[schedule]",
        ] {
            assert!(CONFIG.contains(section), "{section}");
        }
        let corpus = crate::content::read_posts(&config);
        assert!(corpus.problems.is_empty(), "{:?}", corpus.problems);
        assert_eq!(corpus.posts.len(), 1);
        assert_eq!(corpus.posts[0].title, "Welcome to the blog");
    }

    #[test]
    fn init_never_overwrites_and_writes_nothing_when_it_refuses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("templates/page.html"), "mine").unwrap();
        let error = init(dir.path(), true, now()).unwrap_err().to_string();
        assert!(
            error.contains("page.html") && error.contains("nothing was written"),
            "{error}"
        );
        assert!(!dir.path().join("config.toml").exists());
        assert!(!dir.path().join("content").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("templates/page.html")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn a_file_where_a_folder_goes_is_refused_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("templates"), "a file").unwrap();
        let error = init(dir.path(), true, now()).unwrap_err().to_string();
        assert!(error.contains("templates"), "{error}");
        assert!(!dir.path().join("content").exists());
        assert!(!dir.path().join("config.toml").exists());
    }
}

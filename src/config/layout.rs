//! Where the files the tool keeps private lie, and a check that none of
//! them is inside the output folder, which the server (and any web server
//! pointed at it) publishes.

use std::path::{Component, Path, PathBuf};

use super::{Config, ConfigError};

/// A private file or folder, and why it must not be published.
pub struct Private {
    pub path: PathBuf,
    pub what: &'static str,
}

/// The files and folders that must never be served: the store with its
/// SQLite companions and lock, the config file, the DKIM key, and the
/// templates folder.
pub fn private_paths(config: &Config) -> Vec<Private> {
    let store = &config.store.path;
    let mut paths = Vec::new();
    // SQLite keeps its companions beside the file a symbolic link leads to.
    for base in [store.clone(), resolve(store)] {
        for suffix in [
            "",
            "-wal",
            "-shm",
            "-journal",
            ".lock",
            ".welcome.lock",
            ".unsubscribes",
        ] {
            let mut name = base.as_os_str().to_owned();
            name.push(suffix);
            paths.push(Private {
                path: PathBuf::from(name),
                what: "the store (every subscriber, and the secret that signs their links)",
            });
        }
    }
    paths.push(Private {
        path: config.email.outbox.clone(),
        what: "the outbox (every subscriber's mail, with working unsubscribe links)",
    });
    paths.push(Private {
        path: config.path.clone(),
        what: "the config file",
    });
    for dkim in &config.email.dkim {
        paths.push(Private {
            path: dkim.key_file.clone(),
            what: "the DKIM private key",
        });
    }
    paths.push(Private {
        path: config.digest.templates.clone(),
        what: "the templates folder",
    });
    paths
}

/// Refuses an output folder `dir` (named by `key` in the message) that
/// holds any of [`private_paths`], however the paths are written (`..`,
/// symbolic links).
pub fn check_output_dir(config: &Config, dir: &Path, key: &'static str) -> Result<(), ConfigError> {
    let out = resolve(dir);
    for private in private_paths(config) {
        let path = resolve(&private.path);
        // Where the name itself sits: a link in the output folder to a key
        // kept elsewhere is published too by a server that follows links.
        let placed = match (private.path.parent(), private.path.file_name()) {
            (Some(folder), Some(name)) => resolve(folder).join(name),
            _ => path.clone(),
        };
        if path.starts_with(&out) || placed.starts_with(&out) {
            return Err(ConfigError::Published {
                key,
                dir: dir.to_path_buf(),
                file: private.path,
                what: private.what,
            });
        }
    }
    Ok(())
}

/// `path` made absolute with its `..` and symbolic links resolved, also a
/// link that leads to nothing yet (where a file would be created), as far
/// as it exists (the rest is joined as written, without `.` and `..`).
pub fn resolve(path: &Path) -> PathBuf {
    resolve_within(path, 16)
}

fn resolve_within(path: &Path, links: u32) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut lexical = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    // A dangling link: where it leads (relative to its folder).
    if links > 0
        && !lexical.exists()
        && let Ok(target) = std::fs::read_link(&lexical)
    {
        let folder = lexical.parent().unwrap_or(Path::new("/"));
        return resolve_within(&folder.join(target), links - 1);
    }
    // The deepest part that exists, with its links resolved, then the rest.
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_links_and_dots() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let canonical = real.canonicalize().unwrap();
        assert_eq!(
            resolve(&dir.path().join("real/./x/../y.db")),
            canonical.join("y.db")
        );
        #[cfg(unix)]
        assert_eq!(
            resolve(&dir.path().join("link/new/z")),
            canonical.join("new/z")
        );
    }

    #[test]
    fn a_link_to_the_key_inside_the_output_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::create_dir_all(dir.path().join("public")).unwrap();
        std::fs::write(dir.path().join("keys/k.pem"), "key").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("keys/k.pem"),
            dir.path().join("public/k.pem"),
        )
        .unwrap();
        let text = "[site]\nbase_url = \"https://x.org\"\n[email.dkim]\nselector = \"s\"\n\
                    domain = \"x.org\"\nkey_file = \"public/k.pem\"\n";
        let err = Config::parse(text, Path::new("config.toml"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DKIM private key") && err.contains("k.pem"),
            "{err}"
        );
        let moved = text.replace("public/k.pem", "keys/k.pem");
        Config::parse(&moved, Path::new("config.toml"), dir.path()).unwrap();
    }
}

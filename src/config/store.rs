//! `[store]`: the SQLite file with subscribers and the delivery ledger.

use std::path::PathBuf;

use serde::Deserialize;

use super::Source;

/// `[store]`: the SQLite file with subscribers and the delivery ledger.
#[derive(Debug, Clone)]
pub struct Store {
    pub path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    path: PathBuf,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: PathBuf::from("newsletter.db"),
        }
    }
}

/// Checks `[store]`: nothing can be wrong yet, the path is only resolved.
pub(super) fn check(raw: RawStore, source: &Source) -> Store {
    Store {
        path: source.resolve(raw.path),
    }
}

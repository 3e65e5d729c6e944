//! A `file` source's keys and their checks; the platform's registry entry
//! (it has no emulator in the sandbox: `demo` writes its own file).

use super::FileReader;
use crate::config::SourceConfig;
use crate::domain::LocationId;
use crate::config::keys::{Key, SourceKeys};
use crate::platforms::SourceClient;
use crate::platforms::registry::{Platform, SandboxGroups, Settings};
use crate::quota::Quotas;
use std::path::PathBuf;
use std::sync::Arc;
use url::Url;

/// The registry's entry.
pub(crate) static PLATFORM: Platform = Platform {
    kind: "file",
    keys: &[Key::string("platform")],
    location_keys: &[],
    // Files: no platform, no quota.
    quota: Vec::new,
    observe: |_| Vec::new(),
    reconciles: false,
    coverage_note: None,
    discovery_key: None,
    // A path or a glob: anything not blank.
    location_id: |_| Ok(()),
    settings,
    sandbox: |_, _: &mut SandboxGroups| String::new(),
};

/// The `review.source` of rows without one, when the source names no
/// `platform` either: only their quarantined records use it (such a row is
/// refused).
const NO_PLATFORM: &str = "file";

/// Settings of a `file` source.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// `platform`: the `review.source` for rows that do not carry their own.
    pub platform: Option<String>,
    /// The config file's folder: a relative location `id` (path or glob)
    /// starts here, like every other relative path in the config, whatever
    /// the daemon's working directory. The `id` itself stays as written: it
    /// is the location's identity in the ledger.
    pub base_dir: PathBuf,
}

impl Settings for FileConfig {
    fn client(
        &self,
        _source: &SourceConfig,
        _http: reqwest::Client,
        _quotas: &Arc<Quotas>,
    ) -> Box<dyn SourceClient> {
        Box::new(FileReader::new(self))
    }

    fn review_platform(&self) -> &str {
        self.platform.as_deref().unwrap_or(NO_PLATFORM)
    }

    fn urls(&self) -> Vec<&Url> {
        Vec::new()
    }

    /// What the location matches now (relative ids start at the config's
    /// folder), and every match a poll could not read.
    fn inspect(&self, location: &LocationId) -> Option<(String, Vec<String>)> {
        let inspection = FileReader::new(self).inspect(location);
        Some((inspection.summary(), inspection.problems))
    }
}

/// The keys of a `file` source.
fn settings(keys: &mut SourceKeys<'_, '_>) -> Option<Arc<dyn Settings>> {
    let platform = keys.non_empty("platform")?;
    Some(Arc::new(FileConfig {
        platform,
        base_dir: keys.config_dir().to_path_buf(),
    }))
}

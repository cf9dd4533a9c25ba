//! Paths written in the config file.

use std::path::{Path, PathBuf};

/// A path written in the config file: a relative one is taken from the config's directory.
pub(super) fn resolve_path(path: &Path, base_dir: Option<&Path>) -> PathBuf {
    match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

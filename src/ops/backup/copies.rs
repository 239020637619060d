//! The copies of the compose file (its secrets masked by [`crate::redact`], the one redaction)
//! and of opsh's configuration (secrets masked too) that a backup folder holds.

use crate::config::key;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::ops::Target;
use crate::ops::backup::manifest::{CONFIG, FileEntry, Skipped};
use crate::ops::backup::private::{sha256_file, write_private};
use crate::ops::error::{ErrorKind, OpError};

/// The compose file (compose.file) copied into the folder (0600) with its secrets masked, and
/// listed in `files`; a compose file that cannot be read is a skipped note. Returns the
/// manifest's compose slot.
pub(super) async fn copy_compose(
    target: &Target,
    folder: &Path,
    files: &mut Vec<FileEntry>,
    skipped: &mut Vec<Skipped>,
) -> Result<Value, OpError> {
    let compose_path = PathBuf::from(target.settings.text(key::COMPOSE_FILE));
    let compose = match std::fs::read_to_string(&compose_path) {
        Ok(text) => {
            // The one redaction of everything opsh writes (crate::redact).
            let (clean, redacted) = crate::redact::counted(&text);
            let name = compose_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "docker-compose.yml".into());
            write_private(&folder.join(&name), clean.as_bytes())?;
            let (bytes, sha256) = sha256_file(&folder.join(&name)).await?;
            files.push(FileEntry {
                name: name.clone(),
                bytes,
                sha256,
            });
            json!({"file": name, "source": compose_path.display().to_string(), "secrets_redacted": redacted})
        }
        Err(e) => {
            let why = format!("compose file {}: {e}", compose_path.display());
            skipped.push(Skipped {
                what: "compose".into(),
                why: why.clone(),
            });
            json!({"file": null, "source": compose_path.display().to_string(), "skipped": why})
        }
    };
    Ok(compose)
}

/// opsh's configuration as `opsh config` shows it (secrets left out) copied into the folder
/// (0600) as opsh-config.json, and listed in `files`.
pub(super) async fn copy_config(
    target: &Target,
    folder: &Path,
    files: &mut Vec<FileEntry>,
) -> Result<(), OpError> {
    let mut config = serde_json::to_value(target.settings.shown())
        .map_err(|e| OpError::new(ErrorKind::Failed, None, e))?;
    crate::redact::json(&mut config);
    let config =
        serde_json::to_vec_pretty(&config).map_err(|e| OpError::new(ErrorKind::Failed, None, e))?;
    write_private(&folder.join(CONFIG), &config)?;
    let (bytes, sha256) = sha256_file(&folder.join(CONFIG)).await?;
    files.push(FileEntry {
        name: CONFIG.into(),
        bytes,
        sha256,
    });
    Ok(())
}

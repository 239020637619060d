//! The copies of the compose file (its secrets masked by [`redact_secrets`]) and of opsh's
//! configuration (secrets left out) that a backup folder holds.

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
            let (clean, redacted) = redact_secrets(&text);
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
    let config = serde_json::to_vec_pretty(&target.settings.shown())
        .map_err(|e| OpError::new(ErrorKind::Failed, None, e))?;
    write_private(&folder.join(CONFIG), &config)?;
    let (bytes, sha256) = sha256_file(&folder.join(CONFIG)).await?;
    files.push(FileEntry {
        name: CONFIG.into(),
        bytes,
        sha256,
    });
    Ok(())
}

/// Masks secrets in a compose file: the values of keys that name a password, secret, token or
/// key, and the passwords of URLs. Returns the text and how many values were masked.
pub fn redact_secrets(text: &str) -> (String, usize) {
    let mut count = 0;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let mut masked = mask_assignment(body).inspect(|_| count += 1);
        if masked.is_none() {
            let (fixed, n) = mask_url_passwords(body);
            if n > 0 {
                count += n;
                masked = Some(fixed);
            }
        }
        out.push_str(masked.as_deref().unwrap_or(body));
        out.push_str(end);
    }
    (out, count)
}

pub(super) fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|s| n.contains(s))
}

/// `KEY: value`, `KEY=value`, `- KEY=value`, `"KEY": value` with a secret-looking KEY.
pub(super) fn mask_assignment(line: &str) -> Option<String> {
    let indent = line.len() - line.trim_start().len();
    let rest = &line[indent..];
    let (dash, rest) = match rest.strip_prefix("- ") {
        Some(r) => ("- ", r.trim_start()),
        None => ("", rest),
    };
    let pos = rest.find([':', '='])?;
    let name = rest[..pos].trim().trim_matches(['"', '\'']);
    if name.is_empty() || name.contains(' ') || !is_secret_name(name) {
        return None;
    }
    let value = rest[pos + 1..].trim();
    if value.is_empty() || value.starts_with("${") || value == "***" {
        return None;
    }
    Some(
        format!(
            "{}{dash}{}{} ***",
            &line[..indent],
            &rest[..pos],
            &rest[pos..=pos]
        )
        .replace("= ***", "=***"),
    )
}

/// `scheme://user:password@host` → `scheme://user:***@host`, anywhere in the line.
pub(super) fn mask_url_passwords(line: &str) -> (String, usize) {
    let mut out = String::new();
    let mut n = 0;
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '/')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) if authority[..at].contains(':') => {
                let colon = authority[..at].find(':').unwrap_or(0);
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
                n += 1;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn compose_secrets_are_masked() {
        let text = "services:\n  postgres:\n    environment:\n      POSTGRES_PASSWORD: youtube_pass\n      - OPENAI_API_KEY=sk-123\n      DATABASE_URL: postgres://u:youtube_pass@postgres:5432/db\n      POSTGRES_USER: youtube_user\n      X_TOKEN: ${X_TOKEN}\n";
        let (out, n) = redact_secrets(text);
        assert_eq!(
            out,
            "services:\n  postgres:\n    environment:\n      POSTGRES_PASSWORD: ***\n      - OPENAI_API_KEY=***\n      DATABASE_URL: postgres://u:***@postgres:5432/db\n      POSTGRES_USER: youtube_user\n      X_TOKEN: ${X_TOKEN}\n"
        );
        assert_eq!(n, 3);
    }
}

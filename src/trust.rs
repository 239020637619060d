//! Whether a script file may be run, or a configuration file (opsh.toml, .env) read, decided
//! as ssh decides for keys and its config: whoever can change the file, or any directory on the
//! way to it, can run anything with the operator's credentials, or point opsh at another
//! database, other site scripts or another backup directory.
//!
//! The file and every directory from it up to `/` must be owned by the invoking user or by root
//! (a file of another user is refused even when root runs opsh: that user could change it)
//! and not be writable by group or others. The directories are checked as the path names them
//! (the place a symlink lives counts) and, when a symlink is involved, again along the path it
//! resolves to, with the target file checked the same way. A root-owned directory with the
//! sticky bit (`/tmp`) passes although everyone may write it: there, only an entry's owner can
//! rename or remove it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Why a script is refused, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub why: String,
    pub fix: String,
}

/// Checks a script file. `Err` is a refusal; a file that cannot be examined at all (it does
/// not exist) is left to the read that follows, which says so in its own words.
pub fn check(path: &Path) -> Result<(), Refused> {
    let euid = effective_uid();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let absolute = normalize(&cwd.join(path));
    let mut checked = HashSet::new();

    // The file as named (a symlink is checked below, at the path it leads to)…
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.is_symlink()
    {
        examine("file", path, &meta, euid, false)?;
    }
    // …the directories on the way to it as named, so a writable directory holding a symlink
    // counts…
    let given_parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    for (i, dir) in absolute.ancestors().skip(1).enumerate() {
        let shown = match (i, given_parent) {
            (0, Some(parent)) => parent.to_path_buf(),
            _ => dir.to_path_buf(),
        };
        examine_dir(dir, &shown, euid, &mut checked)?;
    }
    // …and, when a symlink is involved anywhere, the path it really leads to.
    if let Ok(real) = std::fs::canonicalize(path)
        && real != absolute
    {
        if let Ok(meta) = std::fs::metadata(&real) {
            examine("file", &real, &meta, euid, false)?;
        }
        for dir in real.ancestors().skip(1) {
            examine_dir(dir, dir, euid, &mut checked)?;
        }
    }
    Ok(())
}

fn examine_dir(
    dir: &Path,
    shown: &Path,
    euid: u32,
    checked: &mut HashSet<PathBuf>,
) -> Result<(), Refused> {
    if !checked.insert(dir.to_path_buf()) {
        return Ok(());
    }
    match std::fs::metadata(dir) {
        Ok(meta) => examine("directory", shown, &meta, euid, true),
        // A directory that cannot be examined cannot be vouched for.
        Err(e) => Err(Refused {
            why: format!("directory {} cannot be examined: {e}", shown.display()),
            fix: format!("ls -ld {}", shown.display()),
        }),
    }
}

fn examine(
    what: &str,
    shown: &Path,
    meta: &std::fs::Metadata,
    euid: u32,
    is_dir: bool,
) -> Result<(), Refused> {
    let uid = meta.uid();
    if uid != euid && uid != 0 {
        let me = user_name(euid);
        return Err(Refused {
            why: format!(
                "{what} {} is owned by {}, not by you ({me}) or root",
                shown.display(),
                describe_user(uid)
            ),
            fix: format!("chown {me} {}", shown.display()),
        });
    }
    let mode = meta.mode();
    let sticky_root_dir = is_dir && uid == 0 && mode & 0o1000 != 0;
    let writers = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        _ if sticky_root_dir => None,
        (true, true) => Some("its group and others"),
        (true, false) => Some("its group"),
        (false, true) => Some("others"),
        (false, false) => None,
    };
    match writers {
        None => Ok(()),
        Some(writers) => Err(Refused {
            why: format!(
                "{what} {} is writable by {writers} (mode {:o})",
                shown.display(),
                mode & 0o7777
            ),
            fix: format!("chmod go-w {}", shown.display()),
        }),
    }
}

/// `a/./b/../c` → `a/c` without touching the file system (symlinks are checked separately).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A user's name from /etc/passwd, or `uid N` when it has none.
fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?.parse::<u32>().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

fn describe_user(uid: u32) -> String {
    let name = user_name(uid);
    if name == uid.to_string() {
        format!("uid {uid}")
    } else {
        format!("{name} (uid {uid})")
    }
}

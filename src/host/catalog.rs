//! The script catalog: the bundled procedures embedded in the binary and the site scripts in the
//! configured directories, which are searched first so a site script overrides a bundled one.

use std::borrow::Cow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Bundled,
    Site,
    File,
}

/// A script ready to compile.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub origin: Origin,
    /// How errors name it: a path, or `scripts/<name>.rhai (bundled)`.
    pub display: String,
    pub source: Cow<'static, str>,
}

/// One line of `opsh scripts`.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    pub origin: Origin,
    pub description: String,
    pub path: Option<String>,
}

pub struct Catalog {
    site_dirs: Vec<PathBuf>,
}

impl Catalog {
    pub fn new(site_dirs: Vec<PathBuf>) -> Catalog {
        Catalog { site_dirs }
    }

    /// A procedure by name: a site script first, then a bundled one.
    pub fn find(&self, name: &str) -> Result<Script, Error> {
        if let Some(path) = self.site_path(name) {
            return load_site(name, &path);
        }
        if let Some(script) = bundled_script(name) {
            return Ok(script);
        }
        let names = self.list().into_iter().map(|l| l.name).collect::<Vec<_>>();
        let suggestions = crate::suggest::ranked(name, names.iter().map(String::as_str))
            .into_iter()
            .map(String::from)
            .collect();
        Err(Error::UnknownProcedure {
            name: name.to_string(),
            suggestions,
        })
    }

    /// A script given by path (`opsh run ./x.rhai`): the operator named it, so no
    /// directory-permission check applies.
    pub fn file(&self, path: &Path) -> Result<Script, Error> {
        let source = std::fs::read_to_string(path).map_err(|e| Error::ScriptFile {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Script {
            name,
            origin: Origin::File,
            display: path.display().to_string(),
            source: source.into(),
        })
    }

    /// A module for `import "name"`: searched in the site directories, then the bundled scripts.
    pub fn module(&self, name: &str) -> Result<Script, Error> {
        let name = name.trim_end_matches(".rhai");
        if let Some(path) = self.site_path(name) {
            return load_site(name, &path);
        }
        bundled_script(name).ok_or_else(|| Error::ScriptFile {
            path: format!("{name}.rhai"),
            cause: format!(
                "no such module in {} or the bundled scripts",
                self.site_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    fn site_path(&self, name: &str) -> Option<PathBuf> {
        // A name with a path separator would escape the script directories.
        if name.contains('/') || name.starts_with('.') {
            return None;
        }
        self.site_dirs
            .iter()
            .map(|d| d.join(format!("{name}.rhai")))
            .find(|p| p.is_file())
    }

    /// All procedures, site scripts first; a site script hides a bundled one of the same name.
    pub fn list(&self) -> Vec<Listed> {
        let mut listed: Vec<Listed> = Vec::new();
        for dir in &self.site_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
                .collect();
            files.sort();
            for path in files {
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if listed.iter().any(|l| l.name == name) {
                    continue;
                }
                let description = std::fs::read_to_string(&path)
                    .map(|s| describe(&s))
                    .unwrap_or_default();
                listed.push(Listed {
                    name,
                    origin: Origin::Site,
                    description,
                    path: Some(path.display().to_string()),
                });
            }
        }
        for (name, source) in bundled::BUNDLED {
            if !listed.iter().any(|l| l.name == *name) {
                listed.push(Listed {
                    name: name.to_string(),
                    origin: Origin::Bundled,
                    description: describe(source),
                    path: None,
                });
            }
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        listed
    }
}

fn bundled_script(name: &str) -> Option<Script> {
    bundled::BUNDLED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, source)| Script {
            name: n.to_string(),
            origin: Origin::Bundled,
            display: format!("scripts/{n}.rhai (bundled)"),
            source: Cow::Borrowed(source),
        })
}

/// Refuses a site script that others could have changed, as ssh refuses such keys: whoever can
/// write it can run anything with the operator's credentials.
fn load_site(name: &str, path: &Path) -> Result<Script, Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    for (what, p) in [("directory", dir), ("file", path)] {
        let mode = std::fs::metadata(p)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if mode & 0o022 != 0 {
            return Err(Error::UnsafeScript {
                path: path.display().to_string(),
                why: format!(
                    "{what} {} is writable by others (mode {:o})",
                    p.display(),
                    mode & 0o777
                ),
                fix: format!("chmod go-w {}", p.display()),
            });
        }
    }
    let source = std::fs::read_to_string(path).map_err(|e| Error::ScriptFile {
        path: path.display().to_string(),
        cause: e.to_string(),
    })?;
    Ok(Script {
        name: name.to_string(),
        origin: Origin::Site,
        display: path.display().to_string(),
        source: source.into(),
    })
}

/// The first comment line of a script is its description.
pub fn describe(source: &str) -> String {
    source
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("#!"))
        .and_then(|l| l.strip_prefix("//"))
        .map(|l| l.trim_start_matches('/').trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_is_the_first_comment_line() {
        assert_eq!(
            describe("// Count jobs by status\nlet x = 1;"),
            "Count jobs by status"
        );
        assert_eq!(
            describe("#!/usr/bin/env opsh\n/// Doc style\n"),
            "Doc style"
        );
        assert_eq!(describe("let x = 1;\n// later"), "");
    }
}

//! The script catalog: the bundled procedures embedded in the binary and the site scripts in the
//! configured directories, which are searched first so a site script overrides a bundled one.

use std::borrow::Cow;
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
    /// A site script that replaces the bundled procedure of the same name.
    pub overrides_bundled: bool,
    /// Why the script cannot run (refused, unreadable, not UTF-8), with the fix.
    pub problem: Option<String>,
}

pub struct Catalog {
    site_dirs: Vec<PathBuf>,
}

impl Catalog {
    pub fn new(site_dirs: Vec<PathBuf>) -> Catalog {
        Catalog { site_dirs }
    }

    /// A script as the command line names it: a path (`x.rhai`, `ops/x`) is that file, any
    /// other word a procedure of the catalog.
    pub fn resolve(&self, script: &str) -> Result<Script, Error> {
        if script.ends_with(".rhai") || script.contains('/') {
            self.file(std::path::Path::new(script))
        } else {
            self.find(script)
        }
    }

    /// A procedure by name: a site script first, then a bundled one.
    pub fn find(&self, name: &str) -> Result<Script, Error> {
        // `_name.rhai` is a module by convention (as is anything in lib/): imported, not run.
        let procedure = !name.starts_with('_');
        if let Some(path) = self.site_path(name).filter(|_| procedure) {
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

    /// A script given by path (`opsh run ./x.rhai`): trusted on the same terms as a site
    /// script, since whoever could change it could run anything with the operator's rights.
    pub fn file(&self, path: &Path) -> Result<Script, Error> {
        let source = load_file(path)?;
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
        let in_lib = self.site_path(&format!("lib/{name}"));
        if let Some(path) = in_lib.or_else(|| self.site_path(name)) {
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
        // A name with a path separator would escape the script directories (`lib/` is the
        // one sub-directory, for modules).
        let base = name.strip_prefix("lib/").unwrap_or(name);
        if base.contains('/') || base.starts_with('.') {
            return None;
        }
        self.site_dirs
            .iter()
            .map(|d| d.join(format!("{name}.rhai")))
            .find(|p| p.is_file())
    }

    /// All procedures, site scripts first; a site script hides a bundled one of the same name
    /// (and says so). Modules (`lib/`, `_name.rhai`) are not procedures and are not listed. A
    /// site script that cannot run is listed with the reason, so it is not a silent gap.
    pub fn list(&self) -> Vec<Listed> {
        let mut listed: Vec<Listed> = Vec::new();
        for dir in &self.site_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "rhai") && !p.is_dir())
                .collect();
            files.sort();
            for path in files {
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if name.starts_with('_') || listed.iter().any(|l| l.name == name) {
                    continue;
                }
                let (description, problem) = match load_file(&path) {
                    Ok(source) => (describe(&source), None),
                    Err(Error::UnsafeScript { why, fix, .. }) => {
                        (String::new(), Some(format!("refused: {why}; run `{fix}`")))
                    }
                    Err(Error::ScriptFile { cause, .. }) => {
                        (String::new(), Some(format!("unreadable: {cause}")))
                    }
                    Err(other) => (String::new(), Some(other.to_string())),
                };
                listed.push(Listed {
                    overrides_bundled: bundled_script(&name).is_some(),
                    name,
                    origin: Origin::Site,
                    description,
                    path: Some(path.display().to_string()),
                    problem,
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
                    overrides_bundled: false,
                    problem: None,
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

/// Loads a site script, refusing one that others could have changed (see [`super::trust`]).
fn load_site(name: &str, path: &Path) -> Result<Script, Error> {
    let source = load_file(path)?;
    Ok(Script {
        name: name.to_string(),
        origin: Origin::Site,
        display: path.display().to_string(),
        source: source.into(),
    })
}

/// A script file's text, once its ownership and permissions are trusted: UTF-8, a leading
/// byte-order mark skipped.
fn load_file(path: &Path) -> Result<String, Error> {
    super::trust::check(path).map_err(|r| Error::UnsafeScript {
        path: path.display().to_string(),
        why: r.why,
        fix: r.fix,
    })?;
    let cannot_read = |cause: String| Error::ScriptFile {
        path: path.display().to_string(),
        cause,
    };
    let bytes = std::fs::read(path).map_err(|e| cannot_read(e.to_string()))?;
    crate::text::decode(bytes).map_err(cannot_read)
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

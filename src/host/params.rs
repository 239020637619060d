//! The arguments a procedure declares in its header, one line each:
//!
//! ```text
//! // arg older_than: duration = setting jobs.stuck_after.reset_stuck_jobs -- processing this long is stuck
//! // arg max_retries: int = setting jobs.max_retries -- jobs retried this often go to failed
//! // arg exact: bool = false -- also count every table's rows exactly
//! ```
//!
//! Kinds: string, int, float, bool, duration, list. A given `key=value` is checked and converted
//! to its kind (a duration stays as written, "2h", so messages show it as the operator did); an
//! undeclared key is refused with a suggestion; a declared argument left out takes its default.
//! A script that declares nothing gets its arguments as text, unchecked.
//!
//! A procedure that changes data says so in its header, on a line of its own:
//!
//! ```text
//! // changes: data
//! ```
//!
//! Such a procedure runs under a PostgreSQL advisory lock named after it, so two runs of it
//! (cron overlapping an operator, two cron hosts) never overlap; read-only procedures take no
//! lock. See [`crate::ops::runlock`].

use rhai::{Dynamic, Map};
use serde::Serialize;

use crate::config::Settings;
use crate::error::Error;
use crate::ops::spec::Kind;

#[derive(Debug, Clone, Serialize)]
pub struct Declared {
    pub name: String,
    pub kind: Kind,
    /// A literal, or `setting KEY`.
    pub default: Option<String>,
    pub doc: String,
}

impl Declared {
    /// `older_than: duration = setting jobs.stuck_after.reset_stuck_jobs — doc`.
    /// The default's value as this configuration resolves it, and where it comes from: a
    /// setting's value and that setting's source, or the literal the script wrote.
    pub fn resolved_default(&self, settings: &Settings) -> Option<(String, String)> {
        let default = self.default.as_ref()?;
        Some(match default.strip_prefix("setting ") {
            Some(key) => {
                let key = key.trim();
                let value = settings.text_by_name(key).unwrap_or_default().to_string();
                let from = settings.source_by_name(key).unwrap_or_default();
                (value, format!("setting {key}, {from}"))
            }
            None => (
                default.trim_matches('"').to_string(),
                "built in".to_string(),
            ),
        })
    }

    /// The argument as `--help` shows it: its default's value and where that value comes from.
    pub fn help_line(&self, settings: &Settings) -> String {
        let default = self
            .resolved_default(settings)
            .map(|(value, from)| format!(" = {value:?} ({from})"))
            .unwrap_or_default();
        self.shown_with(&default)
    }

    /// The argument as declared: `name: kind = default — doc`.
    pub fn line(&self) -> String {
        let default = self
            .default
            .as_ref()
            .map(|d| format!(" = {d}"))
            .unwrap_or_default();
        self.shown_with(&default)
    }

    fn shown_with(&self, default: &str) -> String {
        format!(
            "{}: {}{default} — {}",
            self.name,
            self.kind.name(),
            self.doc
        )
    }
}

/// The declared arguments of a script, in order; an error names the line that does not parse.
pub fn declared(display: &str, source: &str) -> Result<Vec<Declared>, Error> {
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("// arg ") else {
            continue;
        };
        let bad = |why: &str| Error::Usage {
            message: format!(
                "{display}:{}: argument declaration {why}; write `// arg name: kind = default -- doc`",
                n + 1
            ),
        };
        let (head, doc) = rest.split_once(" -- ").unwrap_or((rest, ""));
        let (decl, default) = match head.split_once('=') {
            Some((d, v)) => (d, Some(v.trim().to_string())),
            None => (head, None),
        };
        let (name, kind) = decl.split_once(':').ok_or_else(|| bad("has no `: kind`"))?;
        let kind = match kind.trim() {
            "string" => Kind::Str,
            "int" => Kind::Int,
            "float" => Kind::Float,
            "bool" => Kind::Bool,
            "duration" => Kind::Duration,
            "list" => Kind::Strings,
            other => {
                return Err(bad(&format!(
                    "has the unknown kind `{other}` (string, int, float, bool, duration, list)"
                )));
            }
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("has no valid name"));
        }
        out.push(Declared {
            name: name.to_string(),
            kind,
            default,
            doc: doc.trim().to_string(),
        });
    }
    Ok(out)
}

/// Whether a script's header declares `// changes: data`. Only the header counts: the comment
/// lines before the first line of code.
pub fn changes_data(source: &str) -> bool {
    source
        .lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("//") || l.starts_with("#!"))
        .filter_map(|l| l.strip_prefix("//"))
        .filter_map(|l| l.trim().strip_prefix("changes:"))
        .any(|what| what.split(',').any(|w| w.trim() == "data"))
}

/// The ARGS map: given `key=value` words checked against the declarations and converted,
/// defaults filled in.
pub fn apply(
    procedure: &str,
    declared: &[Declared],
    given: Vec<(String, String)>,
    settings: &Settings,
) -> Result<Map, Error> {
    let mut args = Map::new();
    if declared.is_empty() {
        for (k, v) in given {
            args.insert(k.into(), v.into());
        }
        return Ok(args);
    }
    for (key, value) in given {
        let Some(d) = declared.iter().find(|d| d.name == key) else {
            let names = declared.iter().map(|d| d.name.as_str());
            let hint = match crate::suggest::ranked(&key, names.clone()).first() {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            return Err(Error::Usage {
                message: format!(
                    "{procedure} has no argument `{key}`; {hint}its arguments are {} (`opsh {procedure} --help`)",
                    names
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        let converted = convert(d, &value).map_err(|why| Error::Usage {
            message: format!("{procedure}: argument `{key}={value}`: {why}"),
        })?;
        args.insert(key.into(), converted);
    }
    for d in declared {
        if args.contains_key(d.name.as_str()) {
            continue;
        }
        let Some(default) = &d.default else {
            continue;
        };
        let text = match default.strip_prefix("setting ") {
            Some(key) => match settings.text_by_name(key.trim()) {
                Some(value) => value.to_string(),
                None => {
                    return Err(Error::Usage {
                        message: format!(
                            "{procedure}: the default of `{}` names `{}`, which is no setting (`opsh config` lists them)",
                            d.name,
                            key.trim()
                        ),
                    });
                }
            },
            None => default.trim_matches('"').to_string(),
        };
        let value = convert(d, &text).map_err(|why| Error::Usage {
            message: format!(
                "{procedure}: the default of `{}` ({default}): {why}",
                d.name
            ),
        })?;
        args.insert(d.name.as_str().into(), value);
    }
    Ok(args)
}

fn convert(d: &Declared, text: &str) -> Result<Dynamic, String> {
    let value = d.kind.convert(Dynamic::from(text.to_string()))?;
    Ok(match d.kind {
        // Checked, but kept as written: "2h" reads better in messages than 7200.0.
        Kind::Duration => Dynamic::from(text.to_string()),
        Kind::Strings => Dynamic::from_array(
            text.split(',')
                .map(|s| Dynamic::from(s.trim().to_string()))
                .filter(|s| !s.to_string().is_empty())
                .collect(),
        ),
        _ => value,
    })
}

/// `key=value` words, in order.
pub fn parse_words(words: &[String]) -> Result<Vec<(String, String)>, Error> {
    let mut args = Vec::new();
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(Error::Usage {
                message: format!("argument `{word}` is not key=value (e.g. older_than=2h)"),
            });
        };
        if key.is_empty() {
            return Err(Error::Usage {
                message: format!("argument `{word}` has no key"),
            });
        }
        args.push((key.to_string(), value.to_string()));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_declarations() {
        let d = declared(
            "x.rhai",
            "// Title\n// arg older_than: duration = setting jobs.x -- how old\n// arg n: int\nlet a = 1;",
        )
        .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[0].line(),
            "older_than: duration = setting jobs.x — how old"
        );
        assert_eq!(d[1].kind, Kind::Int);
        assert!(declared("x.rhai", "// arg n: number").is_err());
    }

    #[test]
    fn changes_data_is_read_from_the_header_only() {
        assert!(changes_data("// Reset\n//\n// changes: data\nlet r = 1;"));
        assert!(!changes_data("// Check\nlet r = 1;\n// changes: data\n"));
        assert!(!changes_data("// Check\n// changes: nothing\n"));
    }
}

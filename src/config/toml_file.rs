//! opsh.toml read into dotted keys: unknown keys and sections, wrong types and bad values are
//! errors naming the file, line and key.

use std::path::Path;

use super::key::{self, KEYS, Kind};
use crate::error::Error;

/// Values of a config file section: (key, text).
pub(super) type Values = Vec<(&'static str, String)>;

/// Flattens opsh.toml into dotted keys, rejecting unknown keys and wrong types with the file,
/// line and key named. `[targets.NAME]` sections hold the same keys as the top level
/// (`postgres.url = …`, or `[targets.NAME.postgres]` tables) and come back by name.
pub(super) fn parse_toml(
    path: &Path,
    text: &str,
) -> Result<(Values, Vec<(String, Values)>), Error> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
        Error::Config {
            message: format!("{}:{line}: {}", path.display(), e.message().trim_end()),
        }
    })?;
    let mut targets = Vec::new();
    if let Some(named) = table.remove("targets") {
        let toml::Value::Table(named) = named else {
            return Err(Error::Config {
                message: format!(
                    "{}:{}: `targets` must be sections such as [targets.prod]",
                    path.display(),
                    find_key_line(text, "", "targets")
                ),
            });
        };
        for (name, section) in named {
            let toml::Value::Table(section) = section else {
                return Err(Error::Config {
                    message: format!(
                        "{}: `targets.{name}` must be a section [targets.{name}] of settings",
                        path.display()
                    ),
                });
            };
            let mut values = Vec::new();
            flatten(path, text, "", &section, &mut values).map_err(|e| Error::Config {
                message: format!("[targets.{name}]: {e}"),
            })?;
            targets.push((name, values));
        }
    }
    let mut out = Vec::new();
    flatten(path, text, "", &table, &mut out)?;
    Ok((out, targets))
}

fn flatten(
    path: &Path,
    text: &str,
    prefix: &str,
    table: &toml::Table,
    out: &mut Vec<(&'static str, String)>,
) -> Result<(), Error> {
    for (name, value) in table {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let toml::Value::Table(inner) = value
            && KEYS
                .iter()
                .any(|k| k.name.starts_with(&format!("{dotted}.")))
        {
            flatten(path, text, &dotted, inner, out)?;
            continue;
        }
        let is_table = matches!(value, toml::Value::Table(_));
        let line = is_table
            .then(|| find_table_line(text, &dotted))
            .flatten()
            .unwrap_or_else(|| find_key_line(text, prefix, name));
        if is_table && !KEYS.iter().any(|k| k.name == dotted) {
            let sections = key::sections();
            let suggestion = crate::suggest::closest(&dotted, sections.iter().map(String::as_str))
                .map(|s| format!(" (did you mean `[{s}]`?)"))
                .unwrap_or_default();
            return Err(Error::Config {
                message: format!(
                    "{}:{line}: unknown section `[{dotted}]`{suggestion}",
                    path.display()
                ),
            });
        }
        let Some(key) = KEYS.iter().find(|k| k.name == dotted) else {
            let suggestion = crate::suggest::closest(&dotted, KEYS.iter().map(|k| k.name))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(Error::Config {
                message: format!(
                    "{}:{line}: unknown key `{dotted}`{suggestion}",
                    path.display()
                ),
            });
        };
        let text_value = match (value, key.kind) {
            (toml::Value::String(s), _) => s.clone(),
            (
                toml::Value::Integer(i),
                Kind::Int { .. } | Kind::Duration | Kind::OptionalDuration,
            ) => i.to_string(),
            (toml::Value::Array(items), Kind::List | Kind::PathList) => {
                let mut parts = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) => parts.push(s.to_string()),
                        None => {
                            return Err(Error::Config {
                                message: format!(
                                    "{}:{line}: key `{dotted}` must be a list of strings",
                                    path.display()
                                ),
                            });
                        }
                    }
                }
                parts.join(":")
            }
            (toml::Value::Array(_) | toml::Value::Table(_), Kind::Json) => {
                serde_json::to_string(value).map_err(|e| Error::Config {
                    message: format!("{}:{line}: key `{dotted}`: {e}", path.display()),
                })?
            }
            (other, kind) => {
                return Err(Error::Config {
                    message: format!(
                        "{}:{line}: key `{dotted}` must be {}, not {}",
                        path.display(),
                        key::kind_name(kind),
                        other.type_str()
                    ),
                });
            }
        };
        key::validate(key, &text_value).map_err(|why| Error::Config {
            message: format!("{}:{line}: key `{dotted}`: {why}", path.display()),
        })?;
        out.push((key.name, text_value));
    }
    Ok(())
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of `name = …` inside the `[table]` section (or at the top for a top-level key), so
/// that `url` in `[redis]` is not mistaken for `url` in `[postgres]`.
fn find_key_line(text: &str, table: &str, name: &str) -> usize {
    let header = format!("[{table}]");
    let start = if table.is_empty() {
        0
    } else {
        text.lines()
            .position(|l| l.trim() == header)
            .map_or(0, |i| i + 1)
    };
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |(i, _)| i + 1)
}

/// The line of the `[table]` header that opens `dotted` (or a sub-table of it, which opens it
/// implicitly).
fn find_table_line(text: &str, dotted: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim();
            let Some(inner) = l.strip_prefix('[').and_then(|l| l.split(']').next()) else {
                return false;
            };
            let inner: String = inner
                .trim_start_matches('[')
                .split('.')
                .map(|part| part.trim().trim_matches('"'))
                .collect::<Vec<_>>()
                .join(".");
            inner == dotted || inner.starts_with(&format!("{dotted}."))
        })
        .map(|i| i + 1)
}

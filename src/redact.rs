//! Secrets are never shown: the one redaction of everything opsh prints or writes (stdout,
//! stderr, logs, the audit, the copies a backup makes). Three entry points, none depending on
//! a value parsing cleanly:
//! - [`text`] masks whatever looks like a secret in free text, a line at a time: the password of
//!   a URL's userinfo whatever it holds (`/`, `@`, `:`, `%2F`, quotes, non-ASCII), and the value
//!   of a key that names a secret (PASSWORD, PASS, SECRET, TOKEN, API_KEY, KEY, CREDENTIALS, DSN,
//!   any case) written as `KEY=value`, `KEY: value`, JSON (`"key": "value"`) or TOML
//!   (`key = "value"`);
//! - [`json`] does the same to a JSON value, field by field;
//! - [`url`] shows a configured URL with its password masked, or only its length when it does
//!   not parse — a value that does not parse may hold its password anywhere.

const MASK: &str = "***";

/// Words that name a secret when a key's part (split at `_`, `-`, `.`, camelCase) is one of
/// them or, for the long ones, ends with one (`PGPASSWORD`, `clientSecret`).
const SECRET_SUFFIXES: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "CREDENTIALS",
    "APIKEY",
];
/// Short words that name a secret only as a whole part (`DB_PASS`, `API_KEY`, `SENTRY_DSN`, but
/// not `bypass`, `keys` or `monkey`).
const SECRET_WORDS: &[&str] = &["PASS", "PWD", "KEY", "DSN"];

/// Whether a key (`POSTGRES_PASSWORD`, `qdrant.api_key`, `apiKey`, `sentry-dsn`) names a secret.
pub fn is_secret_name(name: &str) -> bool {
    let parts = parts(name);
    // A lone lower case `key` is the name of an entry in a listing (`opsh config --json` shows
    // {"key": "postgres.url", …}), not a secret; `KEY=…` in an env file is one.
    if parts.len() == 1 && name != "KEY" && name.eq_ignore_ascii_case("key") {
        return false;
    }
    parts.iter().any(|part| {
        let part = part.to_ascii_uppercase();
        SECRET_WORDS.contains(&part.as_str()) || SECRET_SUFFIXES.iter().any(|w| part.ends_with(w))
    })
}

/// A key's parts: split at every character that is not a letter or digit, and where a lower
/// case letter is followed by an upper case one.
fn parts(name: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut prev_lower = false;
    for (i, c) in name.char_indices() {
        if !c.is_alphanumeric() {
            if let Some(s) = start.take() {
                out.push(&name[s..i]);
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            if let Some(s) = start {
                out.push(&name[s..i]);
            }
            start = Some(i);
        } else if start.is_none() {
            start = Some(i);
        }
        prev_lower = c.is_lowercase();
    }
    if let Some(s) = start {
        out.push(&name[s..]);
    }
    out
}

/// Masks the secrets in `s` (see the module's documentation).
pub fn text(s: &str) -> String {
    counted(s).0
}

/// [`text`], and how many values it masked.
pub fn counted(s: &str) -> (String, usize) {
    let mut out = String::with_capacity(s.len());
    let mut count = 0;
    for line in s.split_inclusive('\n') {
        let (line, n) = userinfo(line);
        count += n;
        let (line, n) = keys(&line);
        count += n;
        out.push_str(&line);
    }
    (out, count)
}

/// Masks a JSON value in place: the values under a key that names a secret, and the secrets in
/// every string.
pub fn json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => *s = text(s),
        Value::Array(items) => items.iter_mut().for_each(json),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_name(key) {
                    mask_all(v);
                } else {
                    json(v);
                }
            }
        }
        _ => {}
    }
}

/// Every string and number under a secret key becomes the mask.
fn mask_all(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.is_empty() || keep_value(s) => {}
        Value::String(_) | Value::Number(_) => *value = Value::String(MASK.into()),
        Value::Array(items) => items.iter_mut().for_each(mask_all),
        Value::Object(map) => map.values_mut().for_each(mask_all),
        _ => {}
    }
}

/// A configured URL as it may be shown: the password and secret parameters masked; a value
/// that is not a URL with an authority (bad port, empty host, unbalanced brackets, no URL at
/// all) as `<unparseable, N chars>`, since its secret could be anywhere in it.
pub fn url(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    match ::url::Url::parse(s) {
        // Masked in the text as written (the parser would also normalise it, e.g. add a "/").
        Ok(parsed) if !parsed.cannot_be_a_base() && s.contains("://") => {
            keys(&mask_authority_password(s)).0
        }
        _ => unparseable(s),
    }
}

/// The password of a URL that parsed: in a valid URL the authority ends at the first `/`, `?`
/// or `#` after `://`, and its userinfo at the last `@` inside it.
fn mask_authority_password(s: &str) -> String {
    let Some(start) = s.find("://").map(|i| i + 3) else {
        return s.to_string();
    };
    let authority_end = s[start..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| start + i);
    let authority = &s[start..authority_end];
    match (authority.find(':'), authority.rfind('@')) {
        (Some(colon), Some(at)) if colon < at => {
            format!("{}{MASK}{}", &s[..start + colon + 1], &s[start + at..])
        }
        _ => s.to_string(),
    }
}

/// What is shown instead of a value that cannot be parsed.
pub fn unparseable(s: &str) -> String {
    format!("<unparseable, {} chars>", s.chars().count())
}

/// A value left as it is: already masked, a reference to a variable (`${DB_PASSWORD}` in a
/// compose file), which holds no secret itself, or the placeholder of a usage text
/// (`expected KEY=value`, `--set KEY=VALUE`).
fn keep_value(v: &str) -> bool {
    let name_ok =
        |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    v == MASK
        || v.eq_ignore_ascii_case("value")
        || v.starts_with("<unparseable, ")
        || v.strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .is_some_and(name_ok)
        || v.strip_prefix('$').is_some_and(name_ok)
}

/// Whether the quote at `i` of `word` closes a quoted string (JSON, YAML, a shell word) rather
/// than being a character of a password: it ends the word or is followed by punctuation.
fn closes_quote(word: &str, i: usize) -> bool {
    word[i + 1..]
        .chars()
        .next()
        .is_none_or(|c| matches!(c, ',' | ';' | ':' | '}' | ']' | ')' | '>' | '\\'))
}

/// `scheme://user:secret@host` → `scheme://user:***@host`. The URL runs to the next white space;
/// the password is everything between the first `:` after `://` and the last `@` before a
/// closing quote, so a password holding `/`, `@`, `:`, `#` or a quote is masked whole.
fn userinfo(line: &str) -> (String, usize) {
    let mut out = String::with_capacity(line.len());
    let mut count = 0;
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // One pass, stopping early: compact JSON is one long line without white space.
        let limit = after
            .char_indices()
            .find(|&(i, c)| {
                c.is_whitespace()
                    || matches!(c, '<' | '>')
                    || (matches!(c, '"' | '\'' | '`')
                        && (closes_quote(after, i)
                            || after[i + 1..].starts_with(char::is_whitespace)))
            })
            .map_or(after.len(), |(i, _)| i);
        let word = after;
        let region = &word[..limit];
        match (region.find(':'), region.rfind('@')) {
            (Some(colon), Some(at_sign)) if colon < at_sign => {
                if &region[colon + 1..at_sign] != MASK {
                    count += 1;
                }
                out.push_str(&word[..=colon]);
                out.push_str(MASK);
                out.push_str(&word[at_sign..limit]);
            }
            _ => out.push_str(region),
        }
        // After a closing quote the word may hold another URL (compact JSON has no spaces).
        rest = &after[limit..];
    }
    out.push_str(rest);
    (out, count)
}

/// Characters of a key's name.
fn name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Masks the value of every key that names a secret on one line: `KEY=value`, `KEY: value`,
/// `KEY = "value"`, `"key": "value"`, `"key": 123`, `key='value'`.
fn keys(line: &str) -> (String, usize) {
    let mut out = String::with_capacity(line.len());
    let mut count = 0;
    let mut copied = 0;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if !(c == b'=' || c == b':') || !separator(bytes, i) {
            i += 1;
            continue;
        }
        let Some((name_start, quoted_key)) = key_before(line, i) else {
            i += 1;
            continue;
        };
        if !is_secret_name(&line[name_start..key_end(line, i, quoted_key)]) {
            i += 1;
            continue;
        }
        let at_line_start = {
            let prefix = line[..name_start].trim_end_matches(['"', '\'']).trim();
            let prefix = prefix.trim_start_matches(['-', '#']).trim();
            prefix
                .strip_prefix("export")
                .unwrap_or(prefix)
                .trim()
                .is_empty()
        };
        let value_start =
            i + 1 + (line[i + 1..].len() - line[i + 1..].trim_start_matches([' ', '\t']).len());
        // `KEY: value` is YAML's plain scalar (or a header): it runs to the end of the line
        // wherever it stands; `KEY=value` only at the start of a line (an env file), else it
        // ends at white space (`host=db password=… user=u`).
        let to_line_end = at_line_start || bytes[i] == b':';
        let (start, end, quote_it) = value_span(line, value_start, quoted_key, to_line_end);
        let value = &line[start..end];
        let json_literal = quoted_key && matches!(value, "true" | "false" | "null");
        if !(value.is_empty() || keep_value(value) || json_literal) {
            out.push_str(&line[copied..start]);
            out.push_str(if quote_it { "\"***\"" } else { MASK });
            copied = end;
            count += 1;
        }
        i = end.max(i + 1);
    }
    out.push_str(&line[copied..]);
    (out, count)
}

/// Whether the `=` or `:` at `i` separates a key from its value (not `==`, `!=`, `<=`, `://`).
fn separator(bytes: &[u8], i: usize) -> bool {
    let next = bytes.get(i + 1).copied();
    let prev = i.checked_sub(1).map(|p| bytes[p]);
    match bytes[i] {
        b'=' => next != Some(b'=') && !matches!(prev, Some(b'=' | b'!' | b'<' | b'>' | b':')),
        _ => !(next == Some(b'/') && bytes.get(i + 2) == Some(&b'/')) && next != Some(b':'),
    }
}

/// The start of the key whose separator is at `sep`, skipping blanks and a closing quote (and
/// the backslash of an escaped one); whether the key was quoted.
fn key_before(line: &str, sep: usize) -> Option<(usize, bool)> {
    let head = line[..sep].trim_end_matches([' ', '\t']);
    let (head, quoted) = match head.strip_suffix(['"', '\'']) {
        Some(h) => (h.strip_suffix('\\').unwrap_or(h), true),
        None => (head, false),
    };
    let name_len: usize = head
        .chars()
        .rev()
        .take_while(|&c| name_char(c))
        .map(char::len_utf8)
        .sum();
    (name_len > 0).then(|| (head.len() - name_len, quoted))
}

/// The end of the key that starts before the separator at `sep`.
fn key_end(line: &str, sep: usize, quoted: bool) -> usize {
    let head = line[..sep].trim_end_matches([' ', '\t']);
    if !quoted {
        return head.len();
    }
    let head = &head[..head.len() - 1];
    head.strip_suffix('\\').unwrap_or(head).len()
}

/// Where the value starting at `start` ends: a quoted value at its closing quote (its content
/// is masked), a bare value at the end of the line when `to_line_end` (`KEY: two words` in
/// YAML, `KEY=value` in an env file), else at white space or punctuation. Returns the
/// span to mask and whether the mask must be quoted (a bare JSON value).
fn value_span(
    line: &str,
    start: usize,
    quoted_key: bool,
    to_line_end: bool,
) -> (usize, usize, bool) {
    let rest = &line[start..];
    let line_end = start + rest.trim_end().len();
    let escaped_open = rest.starts_with("\\\"");
    let open = if escaped_open {
        Some('"')
    } else {
        rest.chars().next().filter(|c| matches!(c, '"' | '\''))
    };
    if let Some(q) = open {
        let body = start + if escaped_open { 2 } else { 1 };
        let mut escape = false;
        for (j, c) in line[body..].char_indices() {
            if escape {
                escape = false;
                continue;
            }
            if c == '\\' {
                if escaped_open && line[body + j + 1..].starts_with('"') {
                    return (body, body + j, false);
                }
                escape = q == '"';
                continue;
            }
            if c == q && !escaped_open {
                return (body, body + j, false);
            }
        }
        return (body, line_end.max(body), false);
    }
    if to_line_end && !quoted_key {
        // To the end of the line, or of the JSON string the line sits in (a `"` that closes
        // it: `{"detail":"KEY: two words","name":…}`).
        let mut escape = false;
        for (j, c) in line[start..line_end].char_indices() {
            if escape {
                escape = false;
            } else if c == '\\' {
                escape = true;
            } else if c == '"' && closes_quote(&line[..line_end], start + j) {
                return (start, start + j, false);
            }
        }
        return (start, line_end, false);
    }
    let mut escape = false;
    for (j, c) in rest.char_indices() {
        if escape {
            escape = false;
            continue;
        }
        if c == '\\' && !quoted_key {
            escape = true;
            continue;
        }
        let ends = c.is_whitespace()
            || matches!(
                c,
                '"' | '\'' | '`' | '&' | ';' | ',' | ')' | '}' | ']' | '<' | '>'
            )
            || (quoted_key && c == '\\');
        if ends {
            return (start, start + j, quoted_key);
        }
    }
    (start, line_end, quoted_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets_in_free_text() {
        let cases = [
            (
                "postgres at postgres://postgres:S3cret@127.0.0.1:99999/db: invalid port",
                "postgres at postgres://postgres:***@127.0.0.1:99999/db: invalid port",
            ),
            ("redis://:pw@host/0", "redis://:***@host/0"),
            ("postgres://u:pa/s@s#x@h/db", "postgres://u:***@h/db"),
            ("postgres://user@host/db", "postgres://user@host/db"),
            ("http://host:6333/path", "http://host:6333/path"),
            (
                "host=db password=hunter2 user=u",
                "host=db password=*** user=u",
            ),
            (
                "http://q:6333/?api_key=abc&x=1",
                "http://q:6333/?api_key=***&x=1",
            ),
            ("x APIKEY=abc; TOKEN=def", "x APIKEY=***; TOKEN=***"),
            (
                "⚠️ db_pass: two words: db_pass: two words",
                "⚠️ db_pass: ***",
            ),
            (
                "bypass=keep compass=keep keys: 3",
                "bypass=keep compass=keep keys: 3",
            ),
            ("pass=", "pass="),
            (
                "expected KEY=value; KEY=VALUE",
                "expected KEY=value; KEY=VALUE",
            ),
            ("`DATABASE_URL=x://a:b@c` é", "`DATABASE_URL=x://a:***@c` é"),
            // Whatever the password holds.
            (
                "DATABASE_URL: postgres://u:pa/ss9Zq@db/x",
                "DATABASE_URL: postgres://u:***@db/x",
            ),
            ("u=postgres://u:p@ss:w%2Frd@db/x", "u=postgres://u:***@db/x"),
            ("'postgres://u:pa\"ss@db/x'", "'postgres://u:***@db/x'"),
            ("postgres://u:pa'ss@db/x", "postgres://u:***@db/x"),
            ("postgres://ü:pässwört@db/x", "postgres://ü:***@db/x"),
            // A quote that closes a JSON string ends the URL.
            (
                r#"{"a":"postgres://u:p@h/x","b":"c@d"}"#,
                r#"{"a":"postgres://u:***@h/x","b":"c@d"}"#,
            ),
            (
                r#"{"a":"x://u:p@h","b":"y://v:q@i"}"#,
                r#"{"a":"x://u:***@h","b":"y://v:***@i"}"#,
            ),
            // Keys that name a secret, any case, every notation.
            ("POSTGRES_PASSWORD=two words", "POSTGRES_PASSWORD=***"),
            ("  - OPENAI_API_KEY=sk-1", "  - OPENAI_API_KEY=***"),
            ("      db_pass: two words # c", "      db_pass: ***"),
            ("export PGPASSWORD=x", "export PGPASSWORD=***"),
            (r#"  "apiKey": "a \"b\" c","#, r#"  "apiKey": "***","#),
            (r#"{"token":123,"n":1}"#, r#"{"token":"***","n":1}"#),
            (
                r#"{"secret":null,"dsn":"x"}"#,
                r#"{"secret":null,"dsn":"***"}"#,
            ),
            ("client_secret = 'abc'", "client_secret = '***'"),
            (
                r#"{\"Credentials\":\"abc\"}"#,
                r#"{\"Credentials\":\"***\"}"#,
            ),
            ("SENTRY_DSN=https://abc@o1.example/1", "SENTRY_DSN=***"),
            ("X_TOKEN: ${X_TOKEN}", "X_TOKEN: ${X_TOKEN}"),
            (
                "a == b, c != d, db::query, 12:30:45",
                "a == b, c != d, db::query, 12:30:45",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input), expected, "{input}");
        }
    }

    #[test]
    fn masking_twice_changes_nothing_more_and_counts_once() {
        let (once, n) = counted("A_PASSWORD=x\nurl: postgres://u:p@h/x\nplain\n");
        assert_eq!(once, "A_PASSWORD=***\nurl: postgres://u:***@h/x\nplain\n");
        assert_eq!(n, 2);
        assert_eq!(counted(&once), (once.clone(), 0));
    }

    #[test]
    fn names_that_name_a_secret() {
        for name in [
            "PASSWORD",
            "pgpassword",
            "DB_PASS",
            "apiKey",
            "API-KEY",
            "qdrant.api_key",
            "SENTRY_DSN",
            "aws_credentials",
            "clientSecret",
            "GITHUB_TOKEN",
            "KEY",
            "ssh.key",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "bypass",
            "compass",
            "keys",
            "monkey",
            "secrets_redacted",
            "max_tokens",
            "host",
            "passed",
            "key",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn masks_json_by_field() {
        let mut v = serde_json::json!({
            "dir": "/tmp", "password": "x", "nested": {"api_key": 12, "url": "redis://:pw@h/0"},
            "list": ["token=abc"], "secret": {"a": "b", "n": null}
        });
        json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "dir": "/tmp", "password": "***", "nested": {"api_key": "***", "url": "redis://:***@h/0"},
                "list": ["token=***"], "secret": {"a": "***", "n": null}
            })
        );
    }

    #[test]
    fn shows_urls_masked_or_only_their_length() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("redis://localhost:6379/0", "redis://localhost:6379/0"),
            ("http://q:6333/?api_key=abc", "http://q:6333/?api_key=***"),
            ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
            ("http://localhost:6334", "http://localhost:6334"),
            ("http://u:p@h/x@y?token=t", "http://u:***@h/x@y?token=***"),
            ("", ""),
            (
                "postgres://postgres:S3cret@127.0.0.1:99999/db",
                "<unparseable, 45 chars>",
            ),
            ("postgres://u:S3cret@/db", "<unparseable, 23 chars>"),
            ("[::1:5432", "<unparseable, 9 chars>"),
            ("user:S3cret@host", "<unparseable, 16 chars>"),
            ("not a url at all", "<unparseable, 16 chars>"),
        ];
        for (input, expected) in cases {
            assert_eq!(url(input), expected, "{input}");
        }
    }
}

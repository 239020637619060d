//! Secrets are never shown. Two entry points, neither depending on a URL parsing cleanly:
//! [`text`] masks whatever looks like a secret in free text (error messages, values of any
//! kind), and [`url`] shows a configured URL with its password masked, or only its length when
//! it does not parse — a value that does not parse may hold its password anywhere.

/// Parameter names whose value is a secret (`password=…` in a URL query or a key=value
/// connection string, `api_key=…`, `token=…`), compared case-insensitively.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "api_key",
    "apikey",
    "api-key",
    "token",
    "access_token",
    "secret",
];

const MASK: &str = "***";

/// Masks userinfo passwords (`scheme://user:secret@host`) and secret parameters
/// (`password=secret`, `api_key=secret`, `token=secret`, …) wherever they occur in `s`.
pub fn text(s: &str) -> String {
    params(&userinfo(s))
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
            params(&mask_authority_password(s))
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

/// Where a word ends in free text: URLs and parameter values stop at white space and quotes.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>')
}

/// `scheme://user:secret@host` → `scheme://user:***@host`. The password is everything between
/// the first `:` after `://` and the last `@` of the word, so a password holding `/`, `@` or
/// `#` (which a URL parser would reject) is masked whole.
fn userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let word_end = after.find(ends_word).unwrap_or(after.len());
        let word = &after[..word_end];
        match (word.find(':'), word.rfind('@')) {
            (Some(colon), Some(at_sign)) if colon < at_sign => {
                out.push_str(&word[..=colon]);
                out.push_str(MASK);
                out.push_str(&word[at_sign..]);
            }
            _ => out.push_str(word),
        }
        rest = &after[word_end..];
    }
    out.push_str(rest);
    out
}

/// `password=secret` → `password=***` for every name in [`SECRET_PARAMS`], in URL queries
/// (`?password=…&`), key=value strings (`password=… host=…`) and prose alike.
fn params(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let at_boundary = i == 0
            || !lower[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let name = at_boundary
            .then(|| {
                SECRET_PARAMS
                    .iter()
                    .filter(|p| lower[i..].starts_with(*p) && lower[i + p.len()..].starts_with('='))
                    .map(|p| p.len())
                    .max()
            })
            .flatten();
        if let Some(len) = name {
            let value_start = i + len + 1;
            out.push_str(&s[i..value_start]);
            let value_len = s[value_start..]
                .find(|c: char| ends_word(c) || matches!(c, '&' | ';' | ',' | ')'))
                .unwrap_or(s.len() - value_start);
            if value_len > 0 {
                out.push_str(MASK);
            }
            i = value_start + value_len;
            continue;
        }
        let c = s[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
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
            ("APIKEY=abc; TOKEN=def", "APIKEY=***; TOKEN=***"),
            ("bypass=keep compass=keep", "bypass=keep compass=keep"),
            ("pass=", "pass="),
            ("`DATABASE_URL=x://a:b@c` é", "`DATABASE_URL=x://a:***@c` é"),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input), expected, "{input}");
        }
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

//! PostgreSQL's TLS settings as libpq reads them, so opsh's own connections (sqlx, rustls) and
//! the client tools it starts (psql, pg_dump, pg_restore) connect alike: sslmode, sslrootcert,
//! sslcert and sslkey from postgres.url's query, else from PGSSLMODE, PGSSLROOTCERT, PGSSLCERT
//! and PGSSLKEY, else libpq's defaults (prefer; ~/.postgresql/root.crt, postgresql.crt and
//! postgresql.key when they exist).
//!
//! Where sqlx differs from libpq: `require` (and `prefer`) accept any certificate, also when a
//! root certificate is configured (libpq then checks it as verify-ca does); verify-ca and
//! verify-full trust the system's CA certificates besides sslrootcert (libpq only sslrootcert,
//! or only the system's with `sslrootcert=system`).

use std::path::{Path, PathBuf};

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// One TLS parameter's value and where it came from, as errors name it.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub value: String,
    /// "sslrootcert in postgres.url", "PGSSLROOTCERT", or the default file.
    pub from: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PgTls {
    /// libpq's word: disable, allow, prefer, require, verify-ca or verify-full.
    pub mode: String,
    pub root_cert: Option<Source>,
    pub cert: Option<Source>,
    pub key: Option<Source>,
}

/// libpq's default place for `file` (root.crt, postgresql.crt, postgresql.key).
fn default_file(file: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| Path::new(&home).join(".postgresql").join(file))
}

impl PgTls {
    /// The settings for postgres.url with this process's environment.
    pub fn from_url(url: &str) -> Result<PgTls, String> {
        PgTls::read(url, |name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    fn read(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<PgTls, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("postgres.url: {e}"))?;
        let query = |names: &[&str]| {
            parsed
                .query_pairs()
                .filter(|(k, _)| names.contains(&k.as_ref()))
                .last()
                .map(|(_, v)| v.into_owned())
        };
        let pick = |names: &[&str], var: &str| -> Option<Source> {
            if let Some(value) = query(names) {
                return Some(Source {
                    value,
                    from: format!("{} in postgres.url", names[0]),
                });
            }
            env(var).map(|value| Source {
                value,
                from: var.to_string(),
            })
        };
        let mode = pick(&["sslmode", "ssl-mode"], "PGSSLMODE")
            .map(|s| s.value)
            .unwrap_or_else(|| "prefer".into());
        if mode.parse::<PgSslMode>().is_err() {
            return Err(format!(
                "sslmode {mode:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ));
        }
        let default = |file: &str| {
            default_file(file).filter(|p| p.is_file()).map(|p| Source {
                value: p.display().to_string(),
                from: format!("libpq's default {}", p.display()),
            })
        };
        let root_cert = pick(&["sslrootcert", "ssl-root-cert", "ssl-ca"], "PGSSLROOTCERT")
            .or_else(|| default("root.crt"));
        let mut cert = pick(&["sslcert", "ssl-cert"], "PGSSLCERT");
        let mut key = pick(&["sslkey", "ssl-key"], "PGSSLKEY");
        // libpq shows ~/.postgresql/postgresql.crt when it exists, with its key.
        if cert.is_none() && key.is_none() {
            cert = default("postgresql.crt");
            if cert.is_some() {
                key = default_file("postgresql.key").map(|p| Source {
                    value: p.display().to_string(),
                    from: format!("libpq's default {}", p.display()),
                });
            }
        }
        Ok(PgTls {
            mode,
            root_cert,
            cert,
            key,
        })
    }

    fn disabled(&self) -> bool {
        self.mode == "disable"
    }

    /// `sslrootcert=system`: the system's CA certificates only.
    fn system_roots(&self) -> bool {
        self.root_cert.as_ref().is_some_and(|r| r.value == "system")
    }

    /// Reads every configured file, so a missing or malformed one is an error naming where it
    /// was set before a connection is tried. Nothing is read for sslmode=disable.
    pub fn check(&self) -> Result<(), String> {
        if self.disabled() {
            return Ok(());
        }
        if let Some(root) = self.root_cert.as_ref().filter(|_| !self.system_roots()) {
            crate::tls::ca_file(&root.from, Path::new(&root.value))?;
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                crate::tls::identity(
                    (&cert.from, Path::new(&cert.value)),
                    (&key.from, Path::new(&key.value)),
                )?;
            }
            (Some(cert), None) => {
                return Err(format!(
                    "a client certificate is set ({}) without its key (sslkey in postgres.url or PGSSLKEY)",
                    cert.from
                ));
            }
            (None, Some(key)) => {
                return Err(format!(
                    "a client key is set ({}) without its certificate (sslcert in postgres.url or PGSSLCERT)",
                    key.from
                ));
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// sqlx's options with these settings.
    pub fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        let mode = self.mode.parse().unwrap_or_default();
        let mut options = options.ssl_mode(mode);
        if let Some(root) = &self.root_cert {
            options = if self.system_roots() {
                // sqlx trusts the system's roots anyway; an empty PEM adds none to them.
                options.ssl_root_cert_from_pem(Vec::new())
            } else {
                options.ssl_root_cert(&root.value)
            };
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            options = options
                .ssl_client_cert(&cert.value)
                .ssl_client_key(&key.value);
        }
        options
    }

    /// The environment psql, pg_dump and pg_restore get, so libpq connects as opsh does. With
    /// verify-ca/verify-full and no root certificate anywhere, libpq would look only for
    /// ~/.postgresql/root.crt where opsh trusts the system's roots: it gets the system's bundle.
    pub fn tool_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("PGSSLMODE", self.mode.clone())];
        if self.disabled() {
            return env;
        }
        match &self.root_cert {
            Some(root) => env.push(("PGSSLROOTCERT", root.value.clone())),
            None if self.mode.starts_with("verify") => {
                if let Some(bundle) = system_bundle() {
                    env.push(("PGSSLROOTCERT", bundle.display().to_string()));
                }
            }
            None => {}
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            env.push(("PGSSLCERT", cert.value.clone()));
            env.push(("PGSSLKEY", key.value.clone()));
        }
        env
    }

    /// A hint for a certificate the server showed and opsh did not trust.
    pub fn untrusted_hint(&self) -> String {
        match &self.root_cert {
            Some(root) if !self.system_roots() => format!(
                "the server's certificate is not signed by a CA of sslrootcert {} ({})",
                root.value, root.from
            ),
            _ => "trust the server's CA with sslrootcert=FILE in postgres.url (or PGSSLROOTCERT)"
                .into(),
        }
    }
}

/// The system's CA bundle as one file (OpenSSL's SSL_CERT_FILE, else Debian's and Red Hat's
/// places).
fn system_bundle() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            PathBuf::from("/etc/pki/tls/certs/ca-bundle.crt"),
        ])
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str, env: &[(&str, &str)]) -> PgTls {
        PgTls::read(url, |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    #[test]
    fn the_url_wins_over_the_environment_as_in_libpq() {
        let env = [("PGSSLMODE", "require"), ("PGSSLROOTCERT", "/env/ca.pem")];
        let tls = read(
            "postgres://u:p@db/x?sslmode=verify-full&sslrootcert=/url/ca.pem",
            &env,
        );
        assert_eq!(tls.mode, "verify-full");
        let root = tls.root_cert.unwrap();
        assert_eq!(
            (root.value.as_str(), root.from.as_str()),
            ("/url/ca.pem", "sslrootcert in postgres.url")
        );
        let tls = read("postgres://u:p@db/x", &env);
        assert_eq!(tls.mode, "require");
        assert_eq!(tls.root_cert.unwrap().from, "PGSSLROOTCERT");
    }

    #[test]
    fn the_tools_get_the_same_settings_in_their_environment() {
        let tls = read(
            "postgresql://u:p@db/x?sslmode=verify-ca&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem",
            &[],
        );
        assert_eq!(
            tls.tool_env(),
            vec![
                ("PGSSLMODE", "verify-ca".to_string()),
                ("PGSSLROOTCERT", "/ca.pem".to_string()),
                ("PGSSLCERT", "/c.pem".to_string()),
                ("PGSSLKEY", "/k.pem".to_string()),
            ]
        );
        let off = read("postgres://db/x?sslmode=disable&sslrootcert=/gone.pem", &[]);
        assert_eq!(off.tool_env(), vec![("PGSSLMODE", "disable".to_string())]);
        // Nothing is read when TLS is off.
        assert_eq!(off.check(), Ok(()));
    }

    #[test]
    fn a_bad_mode_or_a_missing_file_names_where_it_was_set() {
        let e = PgTls::read("postgres://db/x?sslmode=always", |_| None).unwrap_err();
        assert!(e.contains("\"always\" is not one of"), "{e}");
        let tls = read(
            "postgres://db/x?sslmode=require&sslrootcert=/nonexistent/ca.pem",
            &[],
        );
        let e = tls.check().unwrap_err();
        assert_eq!(
            e,
            "cannot read the CA file /nonexistent/ca.pem (sslrootcert in postgres.url): No such file or directory"
        );
        let tls = read("postgres://db/x", &[("PGSSLCERT", "/c.pem")]);
        assert!(tls.check().unwrap_err().contains("without its key"));
    }
}

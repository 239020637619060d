//! Qdrant's two addresses, gRPC and REST, resolved from what the deployment writes.
//!
//! The deployment's .env has one `QDRANT_URL`, for its Python services, which speak REST:
//! `http://qdrant:6333`. opsh speaks gRPC (6334) and REST only for snapshot transfers. As
//! Qdrant's Python client does with `prefer_grpc` (`port` 6333 for REST, `grpc_port` 6334 on
//! the same host), a qdrant.url on 6333 is read as the REST address and gRPC is the same host
//! on 6334. Any other qdrant.url is the gRPC address, and REST is its host on 6333. The explicit
//! qdrant.grpc_url and qdrant.rest_url win over both.

use super::Settings;
use super::key;

/// Qdrant's REST port and its gRPC port, as the server listens by default.
pub const REST_PORT: u16 = 6333;
pub const GRPC_PORT: u16 = 6334;

/// An address and, in words, where it came from (for `opsh config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub url: String,
    pub source: String,
}

/// `url` with another port; None when it is not a URL with a host.
fn with_port(url: &str, port: u16) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    parsed.host_str()?;
    parsed.set_port(Some(port)).ok()?;
    let mut text = parsed.to_string();
    // url writes a bare host as `http://h:1/`; keep the form the operator wrote.
    if parsed.path() == "/" && !url.ends_with('/') && parsed.query().is_none() {
        text.pop();
    }
    Some(text)
}

/// The explicit port of a URL, or None (none written, or not a URL).
fn port_of(url: &str) -> Option<u16> {
    url::Url::parse(url).ok()?.port()
}

impl Settings {
    fn given(&self, key: key::Text) -> Option<Resolved> {
        let text = self.text(key).trim();
        (!text.is_empty()).then(|| Resolved {
            url: text.to_string(),
            source: self.source_by_name(key.name()).unwrap_or_default(),
        })
    }

    /// The gRPC address opsh's client connects to.
    pub fn qdrant_grpc_url(&self) -> Resolved {
        if let Some(given) = self.given(key::QDRANT_GRPC_URL) {
            return given;
        }
        let url = self.text(key::QDRANT_URL).trim();
        let source = self
            .source_by_name(key::QDRANT_URL.name())
            .unwrap_or_default();
        if port_of(url) == Some(REST_PORT)
            && let Some(grpc) = with_port(url, GRPC_PORT)
        {
            return Resolved {
                url: grpc,
                source: format!(
                    "qdrant.url ({source}) is the REST port {REST_PORT}: gRPC on the same host, {GRPC_PORT}"
                ),
            };
        }
        Resolved {
            url: url.to_string(),
            source: format!("qdrant.url ({source})"),
        }
    }

    /// The REST address of snapshot transfers.
    pub fn qdrant_rest_url(&self) -> Resolved {
        if let Some(given) = self.given(key::QDRANT_REST_URL) {
            return given;
        }
        let url = self.text(key::QDRANT_URL).trim();
        let source = self
            .source_by_name(key::QDRANT_URL.name())
            .unwrap_or_default();
        if port_of(url) == Some(REST_PORT) {
            return Resolved {
                url: url.to_string(),
                source: format!("qdrant.url ({source})"),
            };
        }
        let grpc = self.qdrant_grpc_url();
        match with_port(&grpc.url, REST_PORT) {
            Some(rest) => Resolved {
                url: rest,
                source: format!("the gRPC address's host on {REST_PORT}"),
            },
            // Not a URL: the client says so when it connects.
            None => grpc,
        }
    }

    /// A setting derived when it is not given: its resolved value and where it came from.
    pub(super) fn derived(&self, name: &str) -> Option<Resolved> {
        if name == key::QDRANT_GRPC_URL.name() {
            Some(self.qdrant_grpc_url())
        } else if name == key::QDRANT_REST_URL.name() {
            Some(self.qdrant_rest_url())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use std::collections::BTreeMap;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("OPSH_CONFIG".to_string(), "/dev/null".to_string())])
            .collect();
        let dir = std::env::temp_dir().join("opsh-qdrant-urls-none");
        Settings::load_from(&Overrides::default(), &env, &dir).unwrap()
    }

    fn urls(vars: &[(&str, &str)]) -> (String, String) {
        let s = settings(vars);
        (s.qdrant_grpc_url().url, s.qdrant_rest_url().url)
    }

    #[test]
    fn the_deployments_rest_url_means_grpc_on_6334_of_the_same_host() {
        let s = settings(&[("QDRANT_URL", "http://qdrant:6333")]);
        assert_eq!(
            s.qdrant_grpc_url(),
            Resolved {
                url: "http://qdrant:6334".into(),
                source:
                    "qdrant.url (env QDRANT_URL) is the REST port 6333: gRPC on the same host, 6334"
                        .into()
            }
        );
        assert_eq!(
            s.qdrant_rest_url(),
            Resolved {
                url: "http://qdrant:6333".into(),
                source: "qdrant.url (env QDRANT_URL)".into()
            }
        );
    }

    #[test]
    fn a_grpc_url_puts_rest_on_its_host_not_on_localhost() {
        assert_eq!(
            urls(&[("QDRANT_URL", "http://10.0.0.5:6334")]),
            ("http://10.0.0.5:6334".into(), "http://10.0.0.5:6333".into())
        );
        let s = settings(&[("QDRANT_URL", "http://10.0.0.5:6334")]);
        assert_eq!(
            s.qdrant_rest_url().source,
            "the gRPC address's host on 6333"
        );
        // A host without a port: gRPC as written, REST on 6333 of that host.
        assert_eq!(
            urls(&[("QDRANT_URL", "https://q.example.com")]),
            (
                "https://q.example.com".into(),
                "https://q.example.com:6333".into()
            )
        );
    }

    #[test]
    fn explicit_addresses_win() {
        let s = settings(&[
            ("QDRANT_URL", "http://qdrant:6333"),
            ("OPSH_QDRANT_GRPC_URL", "http://grpc-host:7334"),
            ("OPSH_QDRANT_REST_URL", "http://rest-host:7333"),
        ]);
        assert_eq!(
            s.qdrant_grpc_url(),
            Resolved {
                url: "http://grpc-host:7334".into(),
                source: "env OPSH_QDRANT_GRPC_URL".into()
            }
        );
        assert_eq!(s.qdrant_rest_url().url, "http://rest-host:7333");
        // Only gRPC given, qdrant.url the REST one: REST stays qdrant.url.
        assert_eq!(
            urls(&[
                ("QDRANT_URL", "http://qdrant:6333"),
                ("OPSH_QDRANT_GRPC_URL", "http://other:16334"),
            ]),
            ("http://other:16334".into(), "http://qdrant:6333".into())
        );
        // Only gRPC given, qdrant.url the default: REST on the gRPC host.
        assert_eq!(
            urls(&[("OPSH_QDRANT_GRPC_URL", "http://other:16334")]),
            ("http://other:16334".into(), "http://other:6333".into())
        );
    }

    #[test]
    fn the_default_is_localhost_as_before() {
        assert_eq!(
            urls(&[]),
            (
                "http://localhost:6334".into(),
                "http://localhost:6333".into()
            )
        );
    }

    #[test]
    fn credentials_and_paths_are_kept_and_junk_is_left_to_the_client() {
        assert_eq!(
            with_port("http://u:pw@qdrant:6333/", 6334).as_deref(),
            Some("http://u:pw@qdrant:6334/")
        );
        assert_eq!(
            urls(&[("QDRANT_URL", "not a url")]),
            ("not a url".into(), "not a url".into())
        );
    }
}

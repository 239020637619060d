//! One file per backend client, each made on first use and cached in the [`Target`]: a script
//! that only touches Docker never connects to PostgreSQL, and an unreachable backend is a clean
//! error at the call that needs it.
//!
//! Adding a backend: a file here implementing [`Connect`], and one field in the Target.
//!
//! [`Target`]: crate::ops::Target

pub mod docker;
pub mod postgres;
mod postgres_tls;
pub mod qdrant;
pub mod redis;

use std::time::Duration;

use tokio::sync::OnceCell;

use crate::config::Settings;
use crate::ops::error::{Backend, ErrorKind, OpError};

/// How long a first connection may take before the call fails as `timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend client: how to name it and how to connect.
pub trait Connect: Sized {
    const NAME: &'static str;
    /// The setting that holds its address.
    const SETTING: crate::config::key::Text;

    /// The address operators know it by, secrets masked.
    fn address(settings: &Settings) -> String;

    /// Connects, making one direct attempt so that the error names the real cause (a pool
    /// retrying until its own timeout reports only "timed out").
    fn connect(
        settings: &Settings,
        backend: &Backend,
    ) -> impl Future<Output = Result<Self, OpError>>;
}

/// A client made on first use and kept for the run.
pub struct Lazy<C> {
    backend: Backend,
    cell: OnceCell<C>,
}

impl<C: Connect> Lazy<C> {
    pub fn new(settings: &Settings) -> Lazy<C> {
        Lazy {
            backend: Backend {
                name: C::NAME,
                address: C::address(settings),
                setting: settings.origin(C::SETTING),
            },
            cell: OnceCell::new(),
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub async fn get(&self, settings: &Settings) -> Result<&C, OpError> {
        self.cell
            .get_or_try_init(|| async {
                let connected =
                    tokio::time::timeout(CONNECT_TIMEOUT, C::connect(settings, &self.backend))
                        .await
                        .unwrap_or_else(|_| {
                            Err(OpError::backend(
                                &self.backend,
                                ErrorKind::Timeout,
                                format!(
                                    "no answer within {}",
                                    crate::duration::format(CONNECT_TIMEOUT)
                                ),
                            ))
                        });
                // A failed first connection names the setting that gave the address.
                connected.map_err(|e| OpError {
                    connecting: true,
                    ..e
                })
            })
            .await
    }
}

/// What went wrong on the way to a server, in words, read from an error's whole source chain:
/// the io error at its bottom (refused, reset, timed out), a name that did not resolve, a TLS
/// certificate the client did not accept. `None` when the chain shows none of these (the
/// server answered, and its own words say more). `within` is the connect timeout of a client
/// that has one of its own, for "no answer within …".
///
/// The whole chain, with the libraries' own wording, is logged at -v.
pub fn transport(
    backend: &dyn std::fmt::Display,
    e: &(dyn std::error::Error + 'static),
    within: Option<Duration>,
) -> Option<(ErrorKind, String)> {
    let mut texts = Vec::new();
    let mut io = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        texts.push(err.to_string());
        if io.is_none()
            && let Some(found) = err.downcast_ref::<std::io::Error>()
        {
            io = Some(found.kind());
        }
        cur = err.source();
    }
    let all = texts.join(": ");
    let lower = all.to_lowercase();
    // Some libraries keep the io error behind a wrapper of their own (redis's Arc), or only its
    // Debug text (qdrant-client's "Failed to connect"): its words are still there.
    use std::io::ErrorKind as Io;
    let io = io.or_else(|| {
        [
            ("connection refused", Io::ConnectionRefused),
            ("connection reset", Io::ConnectionReset),
            ("no route to host", Io::HostUnreachable),
            ("network is unreachable", Io::NetworkUnreachable),
            ("kind: connectionrefused", Io::ConnectionRefused),
            ("kind: connectionreset", Io::ConnectionReset),
            ("kind: hostunreachable", Io::HostUnreachable),
            ("kind: networkunreachable", Io::NetworkUnreachable),
            ("kind: timedout", Io::TimedOut),
            ("elapsed(", Io::TimedOut),
        ]
        .into_iter()
        .find_map(|(text, kind)| lower.contains(text).then_some(kind))
    });
    let words = if lower.contains("failed to lookup address")
        || lower.contains("dns error")
        || lower.contains("name or service not known")
        || lower.contains("no address associated")
        || lower.contains("nodename nor servname")
        || lower.contains("temporary failure in name resolution")
    {
        (ErrorKind::Unreachable, "name not resolved".to_string())
    } else if let Some(tls) = tls_words(&lower) {
        (ErrorKind::Unreachable, tls)
    } else {
        match io {
            Some(Io::ConnectionRefused) => (ErrorKind::Unreachable, "connection refused".into()),
            Some(Io::ConnectionReset | Io::ConnectionAborted | Io::BrokenPipe) => (
                ErrorKind::Unreachable,
                "connection closed by the server".into(),
            ),
            Some(Io::UnexpectedEof) => (
                ErrorKind::Unreachable,
                "the server closed the connection without answering".into(),
            ),
            Some(Io::TimedOut) => (ErrorKind::Timeout, no_answer(within)),
            Some(Io::HostUnreachable) => (ErrorKind::Unreachable, "host unreachable".into()),
            Some(Io::NetworkUnreachable) => (ErrorKind::Unreachable, "network unreachable".into()),
            Some(Io::AddrNotAvailable) => (ErrorKind::Unreachable, "address not available".into()),
            Some(Io::NotFound) => (ErrorKind::Unreachable, "no such socket".into()),
            Some(Io::PermissionDenied) => (ErrorKind::Refused, "permission denied".into()),
            _ if lower.contains("timed out") || lower.contains("deadline has elapsed") => {
                (ErrorKind::Timeout, no_answer(within))
            }
            _ => return None,
        }
    };
    tracing::debug!("{backend}: {all}");
    Some(words)
}

/// A TLS failure in [`transport`]'s words with the settings that fix it: `trust` for a
/// certificate not trusted, `identity` for a server that wants a client certificate.
pub fn tls_hint(words: String, trust: &str, identity: Option<&str>) -> String {
    match identity {
        _ if words == UNTRUSTED => format!("{words}; {trust}"),
        Some(hint) if words == WANTS_CLIENT_CERT => format!("{words}; {hint}"),
        _ => words,
    }
}

const UNTRUSTED: &str = "TLS: certificate not trusted";
const WANTS_CLIENT_CERT: &str = "TLS: the server wants a client certificate";

fn no_answer(within: Option<Duration>) -> String {
    match within {
        Some(d) => format!("no answer within {}", crate::duration::format(d)),
        None => "no answer (timed out)".into(),
    }
}

/// A refused certificate in words, from rustls's or OpenSSL's wording.
fn tls_words(lower: &str) -> Option<String> {
    // rustls's words for a peer that answered, but not in TLS (a plain port).
    if lower.contains("corrupt message") || lower.contains("invalidcontenttype") {
        return Some("TLS: the server did not answer in TLS (is this its TLS port?)".into());
    }
    if lower.contains("does not support tls") || lower.contains("does not support ssl") {
        return Some("TLS: the server does not offer TLS".into());
    }
    if lower.contains("certificaterequired") || lower.contains("certificate required") {
        return Some(WANTS_CLIENT_CERT.into());
    }
    let cert = lower.contains("certificate") || lower.contains("tls") || lower.contains("ssl");
    if !cert {
        return None;
    }
    Some(
        if lower.contains("unknownissuer")
            || lower.contains("unknown issuer")
            || lower.contains("self signed")
            || lower.contains("self-signed")
            || lower.contains("unable to get local issuer")
        {
            UNTRUSTED.into()
        } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            "TLS: certificate not valid for this host name".into()
        } else if lower.contains("expired") {
            "TLS: certificate expired".into()
        } else if lower.contains("invalid peer certificate")
            || lower.contains("certificate verify failed")
        {
            "TLS: certificate refused".into()
        } else {
            return None;
        },
    )
}

//! The Docker Engine client (bollard): the endpoint from DOCKER_HOST as the docker CLI reads it
//! (the local socket, tcp:// with TLS when DOCKER_TLS_VERIFY is set, https://, ssh://), the API
//! version negotiated with the engine, and the one place that turns bollard's errors into
//! operation errors.
//!
//! Negotiation matters: bollard speaks a newer API than many deployed engines (Docker 20.10
//! answers API 1.41 only), and an engine refuses every call made with a newer version.

use crate::config::key;
use std::path::PathBuf;

use bollard::{API_DEFAULT_VERSION, ClientVersion};

use super::Connect;
use crate::config::{Settings, redact_url};
use crate::ops::error::{Backend, ErrorKind, OpError};

/// The socket the docker CLI uses when DOCKER_HOST is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// bollard's per-request timeout, in seconds. Long on purpose: a stop with a 60 s grace period
/// is one request; the run's --timeout and Ctrl-C end waits earlier.
const REQUEST_TIMEOUT: u64 = 3600;

pub struct Docker {
    pub api: bollard::Docker,
    /// The engine's API version after negotiation (e.g. "1.41").
    pub api_version: String,
}

fn host(settings: &Settings) -> String {
    match settings.text(key::DOCKER_HOST).trim() {
        "" => DEFAULT_HOST.to_string(),
        h if h.starts_with('/') => format!("unix://{h}"),
        h => h.to_string(),
    }
}

fn tls_verify(settings: &Settings) -> bool {
    // The docker CLI: any non-empty DOCKER_TLS_VERIFY turns verification on.
    !settings.text(key::DOCKER_TLS_VERIFY).trim().is_empty()
}

fn cert_dir(settings: &Settings) -> Option<PathBuf> {
    match settings.text(key::DOCKER_CERT_PATH).trim() {
        "" => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")),
        p => Some(PathBuf::from(p)),
    }
}

impl Connect for Docker {
    const NAME: &'static str = "docker";
    const SETTING: key::Text = key::DOCKER_HOST;

    fn address(settings: &Settings) -> String {
        redact_url(&host(settings))
    }

    async fn connect(settings: &Settings, backend: &Backend) -> Result<Docker, OpError> {
        let host = host(settings);
        let invalid = |cause: String| OpError::backend(backend, ErrorKind::Invalid, cause);
        let api = if host.starts_with("unix://") {
            bollard::Docker::connect_with_unix(&host, REQUEST_TIMEOUT, API_DEFAULT_VERSION)
        } else if host.starts_with("https://")
            || ((host.starts_with("tcp://") || host.starts_with("http://")) && tls_verify(settings))
        {
            let dir = cert_dir(settings).ok_or_else(|| {
                invalid("TLS is on (DOCKER_TLS_VERIFY) but neither DOCKER_CERT_PATH nor HOME is set to find ca.pem, cert.pem and key.pem".into())
            })?;
            for file in ["ca.pem", "cert.pem", "key.pem"] {
                if !dir.join(file).is_file() {
                    return Err(invalid(format!(
                        "TLS is on (DOCKER_TLS_VERIFY) but {} is missing; set DOCKER_CERT_PATH to the directory holding ca.pem, cert.pem and key.pem",
                        dir.join(file).display()
                    )));
                }
            }
            bollard::Docker::connect_with_ssl(
                &host,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                REQUEST_TIMEOUT,
                API_DEFAULT_VERSION,
            )
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            bollard::Docker::connect_with_http(&host, REQUEST_TIMEOUT, API_DEFAULT_VERSION)
        } else if host.starts_with("ssh://") {
            // bollard runs the system's ssh client (openssh), as the docker CLI does.
            bollard::Docker::connect_with_ssh(&host, REQUEST_TIMEOUT, API_DEFAULT_VERSION, None)
        } else {
            return Err(invalid(format!(
                "DOCKER_HOST `{}` has a scheme opsh does not know; use unix://, tcp:// (TLS with DOCKER_TLS_VERIFY), https:// or ssh://",
                redact_url(&host)
            )));
        };
        let mut api = api.map_err(error(backend))?;
        // The one direct attempt, then speak the engine's version when older. On the local
        // socket it is GET /_ping, as the docker CLI negotiates (its Api-Version header):
        // GET /version makes the engine run `runc --version` and `docker-init --version`,
        // ~8 ms of every opsh run's Docker call.
        match host.strip_prefix("unix://") {
            Some(path) => {
                let server = ping_version(path)
                    .await
                    .map_err(|err| error(backend)(bollard::errors::Error::IOError { err }))?;
                if let Some(server) = server.filter(|v| v < API_DEFAULT_VERSION) {
                    api = bollard::Docker::connect_with_unix(&host, REQUEST_TIMEOUT, &server)
                        .map_err(error(backend))?;
                }
            }
            None => api = api.negotiate_version().await.map_err(error(backend))?,
        }
        let v = api.client_version();
        Ok(Docker {
            api,
            api_version: format!("{}.{}", v.major_version, v.minor_version),
        })
    }
}

/// The engine's API version from `GET /_ping` on a unix socket (its `Api-Version` header);
/// `None` when the engine does not send one (then bollard's default is kept).
async fn ping_version(path: &str) -> std::io::Result<Option<ClientVersion>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(path).await?;
    // HTTP/1.0: the engine closes the connection after the answer, which ends the read.
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let head = answer.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "GET /_ping answered `{}`, not 200",
            status.trim()
        )));
    }
    Ok(lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("api-version") {
            return None;
        }
        let (major, minor) = value.trim().split_once('.')?;
        Some(ClientVersion {
            major_version: major.parse().ok()?,
            minor_version: minor.parse().ok()?,
        })
    }))
}

/// A bollard error as an operation error naming the engine (its address is DOCKER_HOST's).
pub fn error(backend: &Backend) -> impl Fn(bollard::errors::Error) -> OpError + '_ {
    move |e| {
        let (kind, cause) = describe(backend, &e);
        OpError::backend(backend, kind, cause)
    }
}

fn describe(backend: &Backend, e: &bollard::errors::Error) -> (ErrorKind, String) {
    use bollard::errors::Error as B;
    match e {
        B::DockerResponseServerError {
            status_code,
            message,
        } => {
            let kind = match status_code {
                404 => ErrorKind::NotFound,
                401 | 403 => ErrorKind::Refused,
                400 => ErrorKind::Invalid,
                _ => ErrorKind::Failed,
            };
            (kind, format!("{message} (HTTP {status_code})"))
        }
        // opsh in a container of its own (the compose snippet's `opsh` service) sees the
        // engine only through a mounted socket, at the default place.
        B::SocketNotFoundError(path)
            if path == "/var/run/docker.sock" && std::path::Path::new("/.dockerenv").exists() =>
        {
            (
            ErrorKind::Unreachable,
            format!(
                "no Docker socket at {path} in this container; mount the engine's socket there \
                 (the `opsh-docker` service of contrib/compose.opsh.yml does) or set DOCKER_HOST"
                ),
            )
        }
        B::SocketNotFoundError(path) => (
            ErrorKind::Unreachable,
            format!(
                "no Docker socket at {path}; is the engine running? (set DOCKER_HOST to its address)"
            ),
        ),
        B::RequestTimeoutError => (
            ErrorKind::Timeout,
            "the Docker Engine did not answer in time".to_string(),
        ),
        _ => match io_kind(e) {
            Some(std::io::ErrorKind::PermissionDenied) => (
                ErrorKind::Refused,
                "permission denied on the Docker socket (run as root or a member of the docker group, or set DOCKER_HOST)".to_string(),
            ),
            io => match super::transport(backend, e, None).or_else(|| {
                // bollard's IOError hides the io::Error from the source chain.
                (io == Some(std::io::ErrorKind::NotFound))
                    .then(|| (ErrorKind::Unreachable, "no such socket".to_string()))
            }) {
                Some((kind, words)) if words.starts_with("TLS:") => (
                    kind,
                    format!(
                        "{words}; the ca.pem in DOCKER_CERT_PATH must be the CA that signed the engine's certificate"
                    ),
                ),
                Some((ErrorKind::Unreachable, words)) if words != "name not resolved" => {
                    (
                        ErrorKind::Unreachable,
                        format!(
                            "{words}; is the Docker Engine running? (DOCKER_HOST names where opsh looks)"
                        ),
                    )
                }
                Some((kind, words)) => (kind, format!("{words} (check DOCKER_HOST)")),
                None => fallback(e),
            },
        },
    }
}

/// A bollard error no better words were found for: its innermost cause.
fn fallback(e: &bollard::errors::Error) -> (ErrorKind, String) {
    use bollard::errors::Error as B;
    match e {
        B::HyperLegacyError { .. } | B::IOError { .. } => (
            ErrorKind::Unreachable,
            format!("{} (check DOCKER_HOST)", root_cause(e)),
        ),
        _ => (ErrorKind::Failed, root_cause(e)),
    }
}

/// The io::Error at the bottom of an error's source chain, if any.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        // Transparent: its source() is the io::Error's source, which skips the io::Error.
        if let Some(bollard::errors::Error::IOError { err }) =
            err.downcast_ref::<bollard::errors::Error>()
        {
            return Some(err.kind());
        }
        cur = err.source();
    }
    None
}

/// The innermost message of an error chain, which names the real cause.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

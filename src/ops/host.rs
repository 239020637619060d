//! `host::` — the machine opsh runs on: disk and memory (the guide's `df -h` and `free -h`, via
//! sysinfo), cleaning the workers' temp dirs (here or in their containers), and an HTTP GET for health endpoints.

use crate::config::key;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use serde::Serialize;

use crate::ops::Target;
use crate::ops::destructive::{Change, Confirm, done, proceed};
use crate::ops::error::{ErrorKind, OpError};
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Registrar, Spec};

#[derive(Debug, Serialize)]
pub struct Disk {
    /// The path asked about.
    pub path: String,
    /// The file system holding it.
    pub mount_point: String,
    pub file_system: String,
    pub total: i64,
    pub used: i64,
    pub available: i64,
    pub use_percent: f64,
}

/// The file system of each path (`df -h PATH`): the mount with the longest matching prefix.
pub fn disk(paths: &[String]) -> Result<Vec<Disk>, OpError> {
    let disks = sysinfo::Disks::new_with_refreshed_list()
        .map_err(|e| OpError::new(ErrorKind::Failed, None, format!("cannot list disks: {e}")))?;
    let mut out = Vec::new();
    for path in paths {
        let real = std::fs::canonicalize(path)
            .map_err(|e| OpError::new(ErrorKind::NotFound, None, format!("{path}: {e}")))?;
        let Some(d) = disks
            .iter()
            .filter(|d| real.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
        else {
            return Err(OpError::new(
                ErrorKind::NotFound,
                None,
                format!("{path}: no mounted file system found for it"),
            ));
        };
        let total = d.total_space() as i64;
        let available = d.available_space() as i64;
        let used = total - available;
        out.push(Disk {
            path: path.clone(),
            mount_point: d.mount_point().display().to_string(),
            file_system: d.file_system().to_string_lossy().into_owned(),
            total,
            used,
            available,
            use_percent: if total > 0 {
                (used as f64 / total as f64 * 1000.0).round() / 10.0
            } else {
                0.0
            },
        });
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub total: i64,
    pub used: i64,
    pub free: i64,
    pub available: i64,
    pub used_percent: f64,
    pub swap_total: i64,
    pub swap_used: i64,
}

/// Memory and swap in bytes (`free -b`).
pub fn memory() -> Result<Memory, OpError> {
    let mut sys = sysinfo::System::new().map_err(|e| {
        OpError::new(
            ErrorKind::Failed,
            None,
            format!("cannot read memory use: {e}"),
        )
    })?;
    sys.refresh_memory();
    let total = sys.total_memory() as i64;
    let used = sys.used_memory() as i64;
    Ok(Memory {
        total,
        used,
        free: sys.free_memory() as i64,
        available: sys.available_memory() as i64,
        used_percent: if total > 0 {
            (used as f64 / total as f64 * 1000.0).round() / 10.0
        } else {
            0.0
        },
        swap_total: sys.total_swap() as i64,
        swap_used: sys.used_swap() as i64,
    })
}

#[derive(Debug, Serialize)]
pub struct Cleaned {
    pub dir: String,
    pub exists: bool,
    /// Entries (files, links, directories) directly inside the dir removed (or, with
    /// --dry-run, that would be).
    pub removed: i64,
    pub bytes: i64,
    pub errors: Vec<String>,
    /// The containers it was emptied in (files.temp_in), or [] when emptied here.
    pub containers: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Clean {
    pub dry_run: bool,
    pub removed: i64,
    pub bytes: i64,
    pub dirs: Vec<Cleaned>,
}

/// The bytes under a path, not following links.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| size_of(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// What is directly inside `dir` and older than `older_than` (by modification time).
fn entries(dir: &Path, older_than: Option<Duration>) -> std::io::Result<Vec<PathBuf>> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let old_enough = match older_than {
            None => true,
            Some(age) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|d| d >= age),
        };
        if old_enough {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether opsh itself runs in a container (Docker's /.dockerenv, Podman's /run/.containerenv).
fn running_in_container() -> bool {
    Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists()
}

/// Whether `dir` is emptied inside the project's containers rather than here (files.temp_in):
/// the workers' dirs are theirs, and an opsh in its own container does not see them.
fn in_containers(target: &Target, dir: &Path) -> bool {
    match target.settings.text(key::FILES_TEMP_IN).trim() {
        "host" => false,
        "containers" => true,
        _ => running_in_container() && !dir.is_dir(),
    }
}

/// Looks in (or empties) the containers for `dirs`. With files.temp_in = "auto" an Engine that
/// cannot be reached is an error in each dir's result, not a failure: the dir is simply not
/// here (a safe-stop goes on); with "containers" it fails.
async fn through_engine(
    target: &Target,
    dirs: &[String],
    older_than: Option<Duration>,
    remove: bool,
) -> Result<Vec<crate::ops::docker::Place>, OpError> {
    match crate::ops::docker::in_containers(target, dirs, older_than, remove).await {
        Err(e) if target.settings.text(key::FILES_TEMP_IN).trim() == "auto" => Ok(dirs
            .iter()
            .map(|d| crate::ops::docker::Place {
                container: String::new(),
                dir: d.clone(),
                exists: false,
                entries: Vec::new(),
                errors: vec![format!(
                    "not here, and the containers could not be asked (files.temp_in): {e}"
                )],
            })
            .collect()),
        other => other,
    }
}

/// The dirs as found in the containers, one [`Cleaned`] each (the containers' entries summed).
fn from_places(dirs: &[PathBuf], places: &[crate::ops::docker::Place]) -> Vec<Cleaned> {
    dirs.iter()
        .map(|dir| {
            let dir = dir.display().to_string();
            let mut c = Cleaned {
                dir: dir.clone(),
                exists: false,
                removed: 0,
                bytes: 0,
                errors: Vec::new(),
                containers: Vec::new(),
            };
            for p in places.iter().filter(|p| p.dir == dir) {
                c.exists |= p.exists;
                c.removed += p.entries.len() as i64;
                c.bytes += p.entries.iter().map(|(_, b)| b).sum::<i64>();
                c.errors.extend(p.errors.iter().cloned());
                if p.exists && !c.containers.contains(&p.container) {
                    c.containers.push(p.container.clone());
                }
            }
            c
        })
        .collect()
}

/// The temp dirs as they are, where they are emptied (files.temp_in), nothing removed: dir,
/// whether it exists, and the entries directly inside it.
pub async fn survey(
    target: &Target,
    dirs: &[PathBuf],
) -> Result<Vec<(String, bool, i64)>, OpError> {
    let remote: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| in_containers(target, d))
        .cloned()
        .collect();
    let places = if remote.is_empty() {
        Vec::new()
    } else {
        let names: Vec<String> = remote.iter().map(|d| d.display().to_string()).collect();
        through_engine(target, &names, None, false).await?
    };
    let found = from_places(&remote, &places);
    Ok(dirs
        .iter()
        .map(|d| {
            let name = d.display().to_string();
            match found.iter().find(|c| c.dir == name) {
                Some(c) => (name, c.exists, c.removed),
                None => match std::fs::read_dir(d) {
                    Ok(rd) => (name, true, rd.count() as i64),
                    Err(_) => (name, false, 0),
                },
            }
        })
        .collect())
}

/// Empties the temp dirs (keeping the dirs themselves), safe-stop's and safe-start's step:
/// here, or inside the project's containers (files.temp_in). A missing dir is reported, not an
/// error; links are removed, never followed.
pub async fn clean_dirs(
    target: &Target,
    dirs: &[PathBuf],
    older_than: Option<Duration>,
) -> Result<Clean, OpError> {
    let (remote, local): (Vec<PathBuf>, Vec<PathBuf>) =
        dirs.iter().cloned().partition(|d| in_containers(target, d));
    let remote_names: Vec<String> = remote.iter().map(|d| d.display().to_string()).collect();
    let listed = if remote.is_empty() {
        Vec::new()
    } else {
        through_engine(target, &remote_names, older_than, false).await?
    };
    let mut planned = Vec::new();
    for dir in &local {
        let mut c = Cleaned {
            dir: dir.display().to_string(),
            exists: dir.is_dir(),
            removed: 0,
            bytes: 0,
            errors: Vec::new(),
            containers: Vec::new(),
        };
        let found = if c.exists {
            entries(dir, older_than).unwrap_or_else(|e| {
                c.errors.push(format!("{}: {e}", dir.display()));
                Vec::new()
            })
        } else {
            Vec::new()
        };
        planned.push((c, found));
    }
    let count = planned.iter().map(|(_, f)| f.len()).sum::<usize>()
        + listed.iter().map(|p| p.entries.len()).sum::<usize>();
    let change = Change {
        op: "host::clean_temp",
        summary: format!("remove {count} entries from the temp dirs"),
        count: count as i64,
        confirm: Confirm::Never,
    };
    let go = proceed(target, &change)?;
    let mut out = Clean {
        dry_run: !go,
        removed: 0,
        bytes: 0,
        dirs: Vec::new(),
    };
    let mut cleaned: Vec<Cleaned> = Vec::new();
    for (mut c, found) in planned {
        for path in found {
            let bytes = size_of(&path) as i64;
            let removed = if !go {
                Ok(())
            } else if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {
                    c.removed += 1;
                    c.bytes += bytes;
                }
                Err(e) => c.errors.push(format!("{}: {e}", path.display())),
            }
        }
        cleaned.push(c);
    }
    if !remote.is_empty() {
        let places = if go && count > 0 {
            through_engine(target, &remote_names, older_than, true).await?
        } else {
            listed
        };
        cleaned.extend(from_places(&remote, &places));
    }
    // In the order of the dirs asked for.
    for dir in dirs {
        let name = dir.display().to_string();
        if let Some(i) = cleaned.iter().position(|c| c.dir == name) {
            let c = cleaned.remove(i);
            out.removed += c.removed;
            out.bytes += c.bytes;
            out.dirs.push(c);
        }
    }
    if go {
        done(
            target,
            &change,
            &format!("{} entries removed, {} bytes", out.removed, out.bytes),
        );
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct HttpCheck {
    pub url: String,
    /// A 2xx answer within the timeout.
    pub ok: bool,
    pub status: Option<i64>,
    pub ms: f64,
    pub error: Option<String>,
    /// The start of the body (at most 200 characters).
    pub body: String,
}

/// GET a URL once (http:// or https://), within `timeout`. Never fails: a refused
/// connection, a certificate the client does not trust or a timeout is reported in `error`.
/// https trusts the system's CA certificates and those of `ca_file` (PEM), if given.
pub async fn http_check(url: &str, timeout: Duration, ca_file: Option<&Path>) -> HttpCheck {
    let started = Instant::now();
    let mut out = HttpCheck {
        url: url.to_string(),
        ok: false,
        status: None,
        ms: 0.0,
        error: None,
        body: String::new(),
    };
    let result = tokio::time::timeout(timeout, async {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let builder =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
        match uri.scheme_str() {
            Some("http") => get(builder.build_http(), uri).await,
            Some("https") => {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls_config(ca_file)?)
                    .https_only()
                    .enable_http1()
                    .build();
                get(builder.build(https), uri).await.map_err(|e| {
                    if e.contains("certificate") {
                        let e = e.strip_prefix("TLS: ").unwrap_or(&e);
                        format!(
                            "TLS: {e}; trust the server's CA with health.ca_file (a PEM file) or the ca_file option"
                        )
                    } else {
                        e
                    }
                })
            }
            _ => Err("only http:// and https:// URLs are checked".to_string()),
        }
    })
    .await;
    out.ms = (started.elapsed().as_secs_f64() * 10000.0).round() / 10.0;
    match result {
        Err(_) => {
            out.error = Some(format!(
                "no answer within {}",
                crate::duration::format(timeout)
            ))
        }
        Ok(Err(e)) => out.error = Some(e),
        Ok(Ok((status, body))) => {
            out.status = Some(i64::from(status));
            out.ok = (200..300).contains(&status);
            out.body = String::from_utf8_lossy(&body).chars().take(200).collect();
            if !out.ok {
                out.error = Some(format!("HTTP {status}"));
            }
        }
    }
    out
}

/// One GET through `client`: the status and the body, or the innermost cause of the failure.
async fn get<C>(
    client: hyper_util::client::legacy::Client<C, Empty<Bytes>>,
    uri: hyper::Uri,
) -> Result<(u16, Bytes), String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let shown = uri.to_string();
    let res = client.get(uri).await.map_err(|e| {
        // In words where the chain tells (refused, unresolved, TLS), else its innermost cause.
        if let Some((_, words)) = crate::ops::clients::transport(&shown, &e, None) {
            return words;
        }
        let mut cur: &dyn std::error::Error = &e;
        while let Some(next) = cur.source() {
            cur = next;
        }
        cur.to_string()
    })?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, body))
}

/// rustls trusting the system's roots and those of `ca_file` (crate::tls).
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let ca = ca_file
        .map(|path| crate::tls::ca_file(key::HEALTH_CA_FILE.name(), path))
        .transpose()?;
    crate::tls::client_config(ca.as_ref(), None, &[])
}

static DISK: Spec = Spec {
    module: "host",
    name: "disk",
    params: &[Param::optional(
        "paths",
        Kind::Strings,
        "a path or an array of paths (default \"/\")",
    )],
    options: &[],
    returns: "Array",
    doc: "Disk use of the file system holding each path (df): path, mount_point, file_system, \
          total, used, available (bytes), use_percent.",
    examples: &[Example::new(
        r#"host::disk("/").map(|d| d.mount_point)"#,
        r#"["/"]"#,
    )],
};

static MEMORY: Spec = Spec {
    module: "host",
    name: "memory",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Memory and swap of the host (free): total, used, free, available, swap_total, \
          swap_used (bytes), used_percent.",
    examples: &[Example::new(
        r#"let m = host::memory(); [m.total == parse_int(env("EXAMPLES_MEM_TOTAL")), m.used == m.total - m.available]"#,
        "[true, true]",
    )],
};

static CLEAN_TEMP: Spec = Spec {
    module: "host",
    name: "clean_temp",
    params: &[],
    options: &[
        Opt::new(
            "dirs",
            Kind::Strings,
            Default::None,
            "the dirs to empty (default the setting files.temp_dirs)",
        ),
        Opt::new(
            "older_than",
            Kind::Duration,
            Default::None,
            "only entries not modified for this long",
        ),
    ],
    returns: "Map",
    doc: "Empties the workers' temp dirs (the dirs stay): dry_run, removed, bytes and dirs (each \
          dir, exists, removed, bytes, errors, containers). A missing dir is reported, not an \
          error. Where (files.temp_in): here, or inside the project's containers through the \
          Docker Engine, as for an opsh in a container of its own, which does not see the \
          workers' files; then bytes are du's (KiB steps) and containers names where each dir \
          was found. With --dry-run nothing is removed.",
    examples: &[Example::new(
        r#"host::clean_temp(#{dirs: ["/nonexistent/opsh-temp"]}).dirs[0].exists"#,
        "false",
    )],
};

/// The options of every GET of a health URL (host::http_check, models::health).
pub const HTTP_OPTIONS: &[Opt] = &[
    Opt::new(
        "timeout",
        Kind::Duration,
        Default::Setting(key::HEALTH_TIMEOUT.name()),
        "how long to wait for the answer",
    ),
    Opt::new(
        "ca_file",
        Kind::Str,
        Default::Setting(key::HEALTH_CA_FILE.name()),
        "a PEM file of CA certificates an https server may be signed by, beside the system's",
    ),
];

static HTTP_CHECK: Spec = Spec {
    module: "host",
    name: "http_check",
    params: &[Param::new("url", Kind::Str, "an http:// or https:// URL")],
    options: HTTP_OPTIONS,
    returns: "Map",
    doc: "One GET of a health URL: url, ok (a 2xx answer in time), status, ms, error, body (its \
          first 200 characters). Never fails: a refused connection or an untrusted certificate \
          is ok = false with the cause in error. https uses rustls and trusts the system's CA \
          certificates plus those of ca_file.",
    examples: &[Example::new(
        r#"host::http_check("http://127.0.0.1:9/health", #{timeout: "2s"}).ok"#,
        "false",
    )],
};

pub fn register(reg: &mut Registrar) {
    reg.add(&DISK, |c| {
        let paths = c
            .opt_strings("paths")?
            .unwrap_or_else(|| vec!["/".to_string()]);
        Ok(disk(&paths)?)
    });
    reg.add(&MEMORY, |_| Ok(memory()?));
    reg.add(&CLEAN_TEMP, |c| {
        let dirs = match c.opt_strings("dirs")? {
            Some(d) => d.into_iter().map(PathBuf::from).collect(),
            None => c.target.settings.paths(key::FILES_TEMP_DIRS),
        };
        let older_than = c.opt_duration("older_than")?;
        c.block(async { clean_dirs(c.target, &dirs, older_than).await })
    });
    reg.add(&HTTP_CHECK, |c| {
        let url = c.str("url")?;
        let timeout = c.duration("timeout")?;
        let ca_file = c
            .opt_str("ca_file")?
            .filter(|f| !f.trim().is_empty())
            .map(|f| crate::config::expand_home(&f));
        c.block(async { Ok(http_check(&url, timeout, ca_file.as_deref()).await) })
    });
    crate::ops::gpu::register(reg);
}

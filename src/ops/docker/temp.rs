//! The workers' temp dirs inside their containers, through the Engine, for an opsh that does
//! not see the workers' file systems (it runs in a container of its own): what the deployment's
//! graceful_shutdown.py does with `docker exec`.
//!
//! Every container of the project is asked, since which worker has which dir is the
//! deployment's business: one small POSIX sh script lists (or removes) the entries of each dir
//! it has. A running container runs it through an exec. A stopped one (safe-stop empties the
//! dirs after the workers stopped) cannot exec: a dir on one of its volumes or bind mounts is
//! emptied by a throwaway container of its own image with its volumes (`--volumes-from`, no
//! network); a dir in its own file system is out of reach until it runs again, and is reported
//! as an error when it holds anything.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    DownloadFromContainerOptions, InspectContainerOptions, LogsOptions, RemoveContainerOptions,
    StartContainerOptions, WaitContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};

use super::containers::listed;
use super::exec::exec_in;
use crate::ops::Target;
use crate::ops::error::OpError;

/// Lists (`list`) or removes (`remove`) what is directly inside each dir, optionally only
/// entries not modified for more than N minutes. One line a fact, tab-separated, the path last
/// (so a tab in a name stays in the path): `A dir` absent, `D dir` present, `E dir kib path`
/// an entry (listed, or removed), `X dir error path` an entry that could not be removed.
/// Sizes are du's KiB. Needs sh, find, du and rm (busybox or coreutils).
const SCRIPT: &str = r#"mode=$1; age=$2; shift 2
for d in "$@"; do
  if [ ! -d "$d" ]; then printf 'A\t%s\n' "$d"; continue; fi
  printf 'D\t%s\n' "$d"
  find "$d" -mindepth 1 -maxdepth 1 ${age:+-mmin +$age} | while IFS= read -r e; do
    k=$(du -sk "$e" 2>/dev/null | cut -f1)
    if [ "$mode" = remove ]; then
      if err=$(rm -rf -- "$e" 2>&1); then
        printf 'E\t%s\t%s\t%s\n' "$d" "${k:-0}" "$e"
      else
        printf 'X\t%s\t%s\t%s\n' "$d" "$(echo "$err" | tr '\t\n' '  ')" "$e"
      fi
    else
      printf 'E\t%s\t%s\t%s\n' "$d" "${k:-0}" "$e"
    fi
  done
done
"#;

/// One temp dir as found in one container.
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub container: String,
    pub dir: String,
    pub exists: bool,
    /// Entries listed (or removed), with their size in bytes (du's, in KiB steps).
    pub entries: Vec<(String, i64)>,
    pub errors: Vec<String>,
}

/// How a container is reached.
enum Way {
    Exec {
        id: String,
    },
    /// A throwaway container of `image` with the volumes of `id`, for the dirs on them.
    Volumes {
        id: String,
        image: String,
    },
}

fn script(mode: &str, older_than: Option<Duration>, dirs: &[String]) -> Vec<String> {
    let age = older_than
        .map(|d| (d.as_secs() / 60).to_string())
        .unwrap_or_default();
    let mut cmd = vec![
        "sh".to_string(),
        "-c".to_string(),
        SCRIPT.to_string(),
        "opsh-temp".to_string(),
        mode.to_string(),
        age,
    ];
    cmd.extend(dirs.iter().cloned());
    cmd
}

/// Reads the script's lines into places of `container`.
fn parse(container: &str, output: &str) -> Vec<Place> {
    let mut places: BTreeMap<String, Place> = BTreeMap::new();
    for line in output.lines() {
        let mut parts = line.splitn(4, '\t');
        let (Some(kind), Some(dir)) = (parts.next(), parts.next()) else {
            continue;
        };
        let p = places.entry(dir.to_string()).or_insert_with(|| Place {
            container: container.to_string(),
            dir: dir.to_string(),
            ..Place::default()
        });
        match (kind, parts.next(), parts.next()) {
            ("D", ..) => p.exists = true,
            ("E", Some(kib), Some(path)) => {
                p.exists = true;
                p.entries
                    .push((path.to_string(), kib.parse::<i64>().unwrap_or(0) * 1024));
            }
            ("X", Some(why), Some(path)) => {
                p.exists = true;
                p.errors
                    .push(format!("{container}: {path}: {}", why.trim()));
            }
            _ => {}
        }
    }
    places.into_values().collect()
}

/// Whether `dir` is on one of the container's mounts.
fn on_mount(mounts: &[String], dir: &str) -> bool {
    mounts.iter().any(|m| {
        let m = m.trim_end_matches('/');
        dir == m || dir.starts_with(&format!("{m}/"))
    })
}

/// Runs the script where `way` says; its output, or why it could not run.
async fn run(target: &Target, way: &Way, cmd: Vec<String>) -> Result<String, String> {
    match way {
        Way::Exec { id } => {
            let out = exec_in(target, id, id.clone(), cmd)
                .await
                .map_err(|e| e.to_string())?;
            if out.exit_code != 0 {
                return Err(format!(
                    "the listing script exited with {}: {}",
                    out.exit_code,
                    out.stderr.trim()
                ));
            }
            Ok(out.stdout)
        }
        Way::Volumes { id, image } => helper(target, id, image, cmd).await,
    }
}

/// A throwaway container of `image` with the volumes of `of`, running `cmd`; its stdout.
async fn helper(
    target: &Target,
    of: &str,
    image: &str,
    cmd: Vec<String>,
) -> Result<String, String> {
    let docker = target.docker().await.map_err(|e| e.to_string())?;
    let api = &docker.api;
    let text = |e: bollard::errors::Error| e.to_string();
    let created = api
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            ContainerCreateBody {
                image: Some(image.to_string()),
                entrypoint: Some(cmd[..1].to_vec()),
                cmd: Some(cmd[1..].to_vec()),
                user: Some("0".to_string()),
                labels: Some(std::collections::HashMap::from([(
                    "org.opsh.temp-helper".to_string(),
                    of.to_string(),
                )])),
                host_config: Some(HostConfig {
                    volumes_from: Some(vec![of.to_string()]),
                    network_mode: Some("none".to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .map_err(text)?;
    let id = created.id;
    let result = async {
        api.start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(text)?;
        let mut waited = api.wait_container(&id, None::<WaitContainerOptions>);
        let code = match waited.next().await {
            Some(Ok(w)) => w.status_code,
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(text(e)),
            None => -1,
        };
        let mut logs = api.logs(
            &id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let (mut stdout, mut stderr) = (String::new(), String::new());
        while let Some(frame) = logs.try_next().await.map_err(text)? {
            match frame {
                LogOutput::StdErr { message } => {
                    stderr.push_str(&String::from_utf8_lossy(&message))
                }
                other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
            }
        }
        if code != 0 {
            return Err(format!(
                "a helper container of its image exited with {code}: {}",
                stderr.trim()
            ));
        }
        Ok(stdout)
    }
    .await;
    let _ = api
        .remove_container(
            &id,
            Some(RemoveContainerOptions {
                force: true,
                v: false,
                ..Default::default()
            }),
        )
        .await;
    result
}

/// Whether `path` exists in a (stopped) container's file system: the Engine's archive endpoint
/// answers 404 when it does not; the first chunk of a tar when it does (then dropped).
async fn exists_in(target: &Target, id: &str, path: &str) -> bool {
    let Ok(docker) = target.docker().await else {
        return false;
    };
    let mut stream = docker.api.download_from_container(
        id,
        Some(DownloadFromContainerOptions {
            path: path.to_string(),
        }),
    );
    matches!(stream.next().await, Some(Ok(_)))
}

/// Finds `dirs` in the project's containers and lists (`remove` false) or removes what is in
/// them. A container that could not be asked is an error in the places of its dirs, never a
/// failure of the whole: the other containers are still emptied.
pub async fn in_containers(
    target: &Target,
    dirs: &[String],
    older_than: Option<Duration>,
    remove: bool,
) -> Result<Vec<Place>, OpError> {
    let mode = if remove { "remove" } else { "list" };
    let docker = target.docker().await?;
    let mut places = Vec::new();
    for f in listed(target).await? {
        if f.state == "running" {
            let way = Way::Exec { id: f.id.clone() };
            match run(target, &way, script(mode, older_than, dirs)).await {
                Ok(out) => places.extend(parse(&f.name, &out).into_iter().filter(|p| p.exists)),
                Err(why) => places.push(unreached(&f.name, dirs, &why)),
            }
            continue;
        }
        let inspected = docker
            .api
            .inspect_container(&f.id, None::<InspectContainerOptions>)
            .await
            .map_err(target.docker_err())?;
        let mounts: Vec<String> = inspected
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.destination)
            .collect();
        let (on_volumes, own): (Vec<String>, Vec<String>) =
            dirs.iter().cloned().partition(|d| on_mount(&mounts, d));
        if !on_volumes.is_empty() {
            let way = Way::Volumes {
                id: f.id.clone(),
                image: inspected.image.clone().unwrap_or_else(|| f.image.clone()),
            };
            match run(target, &way, script(mode, older_than, &on_volumes)).await {
                Ok(out) => places.extend(parse(&f.name, &out).into_iter().filter(|p| p.exists)),
                Err(why) => places.push(unreached(&f.name, &on_volumes, &why)),
            }
        }
        for dir in own {
            if exists_in(target, &f.id, &dir).await {
                places.push(Place {
                    container: f.name.clone(),
                    dir: dir.clone(),
                    exists: true,
                    entries: Vec::new(),
                    errors: vec![format!(
                        "{}: {dir} is in the stopped container's own file system, not on a volume: opsh empties it only while the container runs (or put it on a volume)",
                        f.name
                    )],
                });
            }
        }
    }
    Ok(places)
}

/// The places of a container that could not be asked: an error in the first dir's.
fn unreached(container: &str, dirs: &[String], why: &str) -> Place {
    Place {
        container: container.to_string(),
        dir: dirs.first().cloned().unwrap_or_default(),
        exists: false,
        entries: Vec::new(),
        errors: vec![format!(
            "{container}: cannot look for the temp dirs in it: {why}"
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_lines_become_places() {
        let out = "A\t/tmp/none\nD\t/tmp/a\nE\t/tmp/a\t4\t/tmp/a/x.wav\nE\t/tmp/a\t0\t/tmp/a/name\twith tab\nD\t/tmp/b\nX\t/tmp/b\trm: can't remove\t/tmp/b/y\n";
        let places = parse("w1", out);
        assert_eq!(places.len(), 3);
        let a = places.iter().find(|p| p.dir == "/tmp/a").unwrap();
        assert_eq!(
            a.entries,
            vec![
                ("/tmp/a/x.wav".to_string(), 4096),
                ("/tmp/a/name\twith tab".to_string(), 0)
            ]
        );
        let b = places.iter().find(|p| p.dir == "/tmp/b").unwrap();
        assert_eq!(b.errors, vec!["w1: /tmp/b/y: rm: can't remove"]);
        assert!(!places.iter().find(|p| p.dir == "/tmp/none").unwrap().exists);
    }

    #[test]
    fn a_dir_on_a_mount_or_below_it() {
        let mounts = vec!["/tmp/shared_audio".to_string(), "/app/data/".to_string()];
        assert!(on_mount(&mounts, "/tmp/shared_audio"));
        assert!(on_mount(&mounts, "/app/data/temp"));
        assert!(!on_mount(&mounts, "/tmp/shared_audio2"));
        assert!(!on_mount(&mounts, "/tmp/whisper_cache"));
    }
}

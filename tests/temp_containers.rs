//! The workers' temp dirs emptied inside their containers through the real Docker Engine
//! (files.temp_in = "containers", what an opsh in a container of its own does by itself):
//! an exec in a running worker; a throwaway container with the volumes of a stopped one; a dir
//! in a stopped container's own file system reported, never silently skipped.
//!
//! The workers are busybox containers (OPSH_TEST_BUSYBOX_IMAGE, from tools/with-services)
//! labelled as services of a Compose project of the test's own.

mod support;

use support::docker::{docker, docker_ok};

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use support::Opsh;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn busybox() -> String {
    std::env::var("OPSH_TEST_BUSYBOX_IMAGE")
        .expect("OPSH_TEST_BUSYBOX_IMAGE is not set: run the tests with tools/with-services")
}

/// A worker of the project: a container labelled as its service, removed on drop.
struct Worker {
    name: String,
}

impl Worker {
    /// Runs `script` (sh) in a new container; `detach`: it keeps running, else it has exited
    /// when this returns.
    fn run(project: &str, service: &str, extra: &[&str], script: &str, detach: bool) -> Worker {
        let name = format!("{project}_{service}_1");
        let worker = Worker { name: name.clone() };
        let labels = [
            format!("com.docker.compose.project={project}"),
            format!("com.docker.compose.service={service}"),
            "com.docker.compose.oneoff=False".to_string(),
            "com.docker.compose.container-number=1".to_string(),
        ];
        let mut args: Vec<String> = vec!["run".into(), "--name".into(), name];
        if detach {
            args.push("-d".into());
        }
        for l in &labels {
            args.extend(["--label".into(), l.clone()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend([busybox(), "sh".into(), "-c".into(), script.into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&refs);
        worker
    }

    fn sh(&self, script: &str) -> String {
        docker_ok(&["exec", &self.name, "sh", "-c", script])
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// A named volume, removed on drop.
struct Volume(String);

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = docker(&["volume", "rm", "-f", &self.0]);
    }
}

fn clean_temp(project: &str, dirs: &str, flags: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(flags);
    args.extend(["-e", "host::clean_temp()"]);
    let run = Opsh::new()
        .env("COMPOSE_PROJECT_NAME", project)
        .env("OPSH_FILES_TEMP_IN", "containers")
        .env("OPSH_FILES_TEMP_DIRS", dirs)
        .args(args)
        .run();
    run.code(0);
    run.json()
}

/// Each dir's exists, removed, containers and errors.
fn summary(clean: &Value) -> Vec<Value> {
    clean["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            json!([
                d["dir"],
                d["exists"],
                d["removed"],
                d["containers"],
                d["errors"]
            ])
        })
        .collect()
}

#[test]
fn a_running_workers_dirs_are_emptied_by_an_exec_and_the_dirs_stay() {
    let project = unique("opshtemp");
    let worker = Worker::run(
        &project,
        "stt-worker-1",
        &[],
        "mkdir -p /tmp/shared_audio/job7 /tmp/whisper_cache && echo a > /tmp/shared_audio/a.wav \
         && echo b > /tmp/shared_audio/job7/b.wav && echo c > '/tmp/shared_audio/with space' \
         && echo w > /tmp/whisper_cache/model.bin && exec sleep 600",
        true,
    );
    // Wait for the files (the container runs its script asynchronously).
    for _ in 0..100 {
        if worker.sh("ls /tmp/whisper_cache 2>/dev/null || true") == "model.bin" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dirs = "/tmp/shared_audio:/tmp/youtube_downloads:/tmp/whisper_cache";

    let dry = clean_temp(&project, dirs, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        summary(&dry),
        vec![
            json!(["/tmp/shared_audio", true, 3, [worker.name], []]),
            json!(["/tmp/youtube_downloads", false, 0, [], []]),
            json!(["/tmp/whisper_cache", true, 1, [worker.name], []]),
        ]
    );
    assert_eq!(
        worker.sh("ls -A /tmp/shared_audio"),
        "a.wav\njob7\nwith space"
    );

    let done = clean_temp(&project, dirs, &[]);
    assert_eq!(
        (done["dry_run"].clone(), done["removed"].clone()),
        (json!(false), json!(4))
    );
    assert_eq!(summary(&done), summary(&dry));
    assert_eq!(
        worker.sh("ls -A /tmp/shared_audio /tmp/whisper_cache"),
        "/tmp/shared_audio:\n\n/tmp/whisper_cache:"
    );
}

#[test]
fn a_stopped_workers_volume_is_emptied_and_its_own_files_are_reported() {
    let project = unique("opshtemp");
    let volume = Volume(unique("opshtempvol"));
    docker_ok(&["volume", "create", &volume.0]);
    let mount = format!("{}:/tmp/shared_audio", volume.0);
    // Stopped workers: one with the dir on a volume, one with a dir in its own file system.
    let on_volume = Worker::run(
        &project,
        "data-processor",
        &["-v", &mount],
        "echo x > /tmp/shared_audio/x.wav && mkdir /tmp/shared_audio/part",
        false,
    );
    let own = Worker::run(
        &project,
        "data-collector",
        &[],
        "mkdir -p /tmp/youtube_downloads && echo v > /tmp/youtube_downloads/video.mp4",
        false,
    );
    let dirs = "/tmp/shared_audio:/tmp/youtube_downloads";

    let done = clean_temp(&project, dirs, &[]);
    assert_eq!(
        summary(&done),
        vec![
            json!(["/tmp/shared_audio", true, 2, [on_volume.name], []]),
            json!([
                "/tmp/youtube_downloads",
                true,
                0,
                [own.name],
                [format!(
                    "{}: /tmp/youtube_downloads is in the stopped container's own file system, not on a volume: opsh empties it only while the container runs (or put it on a volume)",
                    own.name
                )]
            ]),
        ]
    );
    // The volume is empty; the helper container is gone.
    let left = docker_ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/v", volume.0),
        &busybox(),
        "ls",
        "-A",
        "/v",
    ]);
    assert_eq!(left, "");
    let helpers = docker_ok(&["ps", "-a", "-q", "--filter", "label=org.opsh.temp-helper"]);
    assert_eq!(helpers, "");
}

#[test]
fn host_keeps_todays_behaviour_and_an_unknown_place_is_refused() {
    let run = Opsh::new()
        .env("OPSH_FILES_TEMP_IN", "host")
        .env("OPSH_FILES_TEMP_DIRS", "/nonexistent/opsh-temp")
        .args(["--json", "-e", "host::clean_temp().dirs[0]"])
        .run();
    run.code(0);
    assert_eq!(
        run.json(),
        json!({"dir": "/nonexistent/opsh-temp", "exists": false, "removed": 0, "bytes": 0, "errors": [], "containers": []})
    );
    let bad = Opsh::new()
        .env("OPSH_FILES_TEMP_IN", "pods")
        .args(["-e", "1"])
        .run();
    bad.code(3);
    assert!(
        bad.stderr.contains("key `files.temp_in` (from env OPSH_FILES_TEMP_IN): `pods` is not one of `auto`, `host`, `containers`"),
        "{}",
        bad.stderr
    );
}

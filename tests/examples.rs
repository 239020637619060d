//! Every registered Rhai function carries a doc line, parameter names and an example; this test
//! runs every example through the real binary against a real (fresh) database. An example must
//! end in `true` or nothing: `false`, an error or another value fails it.

mod support;

use std::collections::BTreeMap;

use opsh::config::{Overrides, Settings};
use support::{Opsh, TestDb};

struct Function {
    name: String,
    params: usize,
    examples: Vec<String>,
    has_names: bool,
}

/// Reads the registered functions (not Rhai's standard library) from the engine's metadata.
fn registered() -> Vec<Function> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let settings = Settings::load_from(
        &Overrides::default(),
        &BTreeMap::new(),
        std::path::Path::new("/"),
    )
    .unwrap();
    let bridge = opsh::bridge::Bridge::new(runtime.handle().clone());
    let target = opsh::ops::Target::new(settings, bridge, opsh::ops::Flags::default());
    let host = opsh::host::Host::new(target, false);
    let json: serde_json::Value =
        serde_json::from_str(&host.engine().gen_fn_metadata_to_json(false).unwrap()).unwrap();
    let mut out = Vec::new();
    collect(&json, "", &mut out);
    out
}

fn collect(module: &serde_json::Value, prefix: &str, out: &mut Vec<Function>) {
    for f in module["functions"].as_array().into_iter().flatten() {
        let comments: Vec<String> = f["docComments"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or_default().to_string())
            .collect();
        let text: String = comments
            .iter()
            .flat_map(|c| c.lines())
            .map(|l| {
                l.trim_start()
                    .trim_start_matches("///")
                    .strip_prefix(' ')
                    .unwrap_or("")
            })
            .collect::<Vec<_>>()
            .join("\n");
        let mut examples = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```rhai\n") {
            let body = &rest[start + 8..];
            let end = body.find("```").expect("example block is closed");
            examples.push(body[..end].to_string());
            rest = &body[end + 3..];
        }
        let params = f["params"].as_array().cloned().unwrap_or_default();
        out.push(Function {
            name: format!("{prefix}{}", f["name"].as_str().unwrap()),
            params: f["numParams"].as_u64().unwrap_or(0) as usize,
            has_names: params.iter().all(|p| {
                p["name"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty() && n != "_")
            }),
            examples,
        });
    }
    for (name, inner) in module["modules"].as_object().into_iter().flatten() {
        collect(inner, &format!("{name}::"), out);
    }
}

#[test]
fn every_registered_function_has_a_doc_parameter_names_and_an_example() {
    let functions = registered();
    assert!(
        functions.len() > 30,
        "only {} functions found",
        functions.len()
    );
    let mut missing = Vec::new();
    for f in &functions {
        if f.examples.is_empty() {
            missing.push(format!("{} has no ```rhai example", f.name));
        }
        if f.params > 0 && !f.has_names {
            missing.push(format!("{} lacks parameter names", f.name));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    for expected in [
        "jobs::reset_stuck",
        "db::query",
        "report::new",
        "log::info",
        "confirm",
        "sleep",
        "get$status",
    ] {
        assert!(
            functions
                .iter()
                .any(|f| f.name == expected || f.name.ends_with(expected)),
            "{expected} is not registered"
        );
    }
}

#[test]
fn every_example_runs_against_the_real_services() {
    let db = TestDb::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for f in registered() {
        for example in &f.examples {
            let run = Opsh::new().db(&db).args(["--yes", "-e", example]).run();
            ran += 1;
            let ok = run.code == 0 && (run.stdout == "true\n" || run.stdout.is_empty());
            if !ok {
                failures.push(format!(
                    "{}: {example}\n  exit {}, stdout {:?}, stderr {:?}",
                    f.name, run.code, run.stdout, run.stderr
                ));
            }
        }
    }
    eprintln!("{ran} examples ran");
    assert!(ran > 30, "only {ran} examples ran");
    assert!(
        failures.is_empty(),
        "{} examples failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

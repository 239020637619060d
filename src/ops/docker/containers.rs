//! The project's containers, found by their Compose labels: listing (`ps`), one container's
//! inspect document, the running container of a service, the services, the engine's version.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use futures_util::future::join_all;
use serde::Serialize;

use crate::config::key;
use crate::ops::Target;
use crate::ops::error::{ErrorKind, OpError};

const PROJECT_LABEL: &str = "com.docker.compose.project";
const SERVICE_LABEL: &str = "com.docker.compose.service";
const NUMBER_LABEL: &str = "com.docker.compose.container-number";
const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

/// The project name as Compose writes it into its label: lower case, only [a-z0-9_-]
/// (docker-compose 1.29's normalize_name; v2 does the same for valid names).
pub fn project_label(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

pub(super) fn project(target: &Target) -> String {
    project_label(target.settings.text(key::COMPOSE_PROJECT))
}

/// One container of the project, as listed.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub(super) service: String,
    pub(super) name: String,
    pub(super) id: String,
    pub(super) number: i64,
    pub(super) state: String,
    pub(super) status: String,
    pub(super) image: String,
    pub(super) ports: Vec<String>,
}

fn no_containers_hint(project: &str) -> String {
    format!(
        "no container of the Compose project `{project}` on this engine; set the project with compose.project in opsh.toml or COMPOSE_PROJECT_NAME"
    )
}

/// The project's containers (all states), ordered by service and number; `services` narrows
/// them (a service name or a container name each), an unknown one is an error listing the
/// project's services.
pub(super) async fn find(
    target: &Target,
    services: Option<&[String]>,
) -> Result<Vec<Found>, OpError> {
    let found = listed(target).await?;
    let project = project(target);
    let Some(wanted) = services else {
        if found.is_empty() {
            tracing::warn!("{}", no_containers_hint(&project));
        }
        return Ok(found);
    };
    if found.is_empty() {
        return Err(OpError::backend(
            target.docker_backend(),
            ErrorKind::NotFound,
            no_containers_hint(&project),
        ));
    }
    filter(target, found, wanted, &project)
}

/// The project's containers (all states), ordered by service and number, without a word when
/// there are none.
pub(super) async fn listed(target: &Target) -> Result<Vec<Found>, OpError> {
    let docker = target.docker().await?;
    let project = project(target);
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{PROJECT_LABEL}={project}"),
            format!("{ONEOFF_LABEL}=False"),
        ],
    )]);
    let listed = docker
        .api
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..std::default::Default::default()
        }))
        .await
        .map_err(target.docker_err())?;
    let mut found: Vec<Found> = listed
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let name = c
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_default();
            let mut ports: Vec<String> = c
                .ports
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
                    match p.public_port {
                        Some(public) => format!(
                            "{}:{public}->{}/{proto}",
                            p.ip.as_deref().unwrap_or("0.0.0.0"),
                            p.private_port
                        ),
                        None => format!("{}/{proto}", p.private_port),
                    }
                })
                .collect();
            ports.sort();
            ports.dedup();
            Found {
                service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                number: labels
                    .get(NUMBER_LABEL)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                id: c.id.unwrap_or_default().chars().take(12).collect(),
                name,
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                status: c.status.unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                ports,
            }
        })
        .collect();
    found.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
    Ok(found)
}

/// The containers of `wanted` (service or container names); an unknown one is an error listing
/// the project's services.
fn filter(
    target: &Target,
    found: Vec<Found>,
    wanted: &[String],
    project: &str,
) -> Result<Vec<Found>, OpError> {
    let known: BTreeSet<&str> = found.iter().map(|f| f.service.as_str()).collect();
    for w in wanted {
        if !known.contains(w.as_str()) && !found.iter().any(|f| &f.name == w) {
            let hint = match crate::suggest::ranked(w, known.iter().copied()).first() {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            };
            return Err(OpError::backend(
                target.docker_backend(),
                ErrorKind::NotFound,
                format!(
                    "unknown service `{w}`; {hint}the project `{project}` has {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(found
        .into_iter()
        .filter(|f| wanted.iter().any(|w| *w == f.service || *w == f.name))
        .collect())
}

#[derive(Debug, Serialize)]
pub struct Ps {
    pub service: String,
    pub container: String,
    pub id: String,
    pub state: String,
    pub status: String,
    /// healthy, unhealthy or starting; () when the container has no healthcheck.
    pub health: Option<String>,
    pub image: String,
    pub ports: Vec<String>,
    /// Seconds since the container started; () when it is not running.
    pub uptime_seconds: Option<i64>,
    /// How often the engine restarted it (its restart policy); () when unknown.
    pub restarts: Option<i64>,
}

async fn inspect_one(target: &Target, name: &str) -> Result<ContainerInspectResponse, OpError> {
    let docker = target.docker().await?;
    docker
        .api
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .map_err(target.docker_err())
}

fn health_of(i: &ContainerInspectResponse) -> Option<String> {
    let status = i.state.as_ref()?.health.as_ref()?.status?;
    match status.to_string().as_str() {
        "" | "none" => None,
        s => Some(s.to_string()),
    }
}

fn uptime_of(i: &ContainerInspectResponse) -> Option<i64> {
    let state = i.state.as_ref()?;
    if state.running != Some(true) {
        return None;
    }
    let started = chrono::DateTime::parse_from_rfc3339(state.started_at.as_deref()?).ok()?;
    Some((chrono::Utc::now() - started.with_timezone(&chrono::Utc)).num_seconds())
}

/// The project's containers with their state, health and uptime.
pub async fn ps(target: &Target, services: Option<&[String]>) -> Result<Vec<Ps>, OpError> {
    let found = find(target, services).await?;
    let inspected = join_all(found.iter().map(|f| inspect_one(target, &f.id))).await;
    Ok(found
        .into_iter()
        .zip(inspected)
        .map(|(f, i)| {
            // A container removed between the list and the inspect keeps its listed state.
            let i = i.ok();
            Ps {
                health: i.as_ref().and_then(health_of),
                uptime_seconds: i.as_ref().and_then(uptime_of),
                restarts: i.as_ref().and_then(|i| i.restart_count),
                service: f.service,
                container: f.name,
                id: f.id,
                state: f.state,
                status: f.status,
                image: f.image,
                ports: f.ports,
            }
        })
        .collect())
}

/// A running container of a service, found by its Compose labels.
#[derive(Debug, Clone)]
pub struct Running {
    pub id: String,
    pub name: String,
    pub image: String,
}

/// The service's first running container; an unknown service, a project without containers or
/// a service with none running is an error that says so.
pub async fn running(target: &Target, service: &str) -> Result<Running, OpError> {
    let found = find(target, Some(&[service.to_string()])).await?;
    found
        .into_iter()
        .find(|f| f.state == "running")
        .map(|f| Running {
            id: f.id,
            name: f.name,
            image: f.image,
        })
        .ok_or_else(|| {
            OpError::backend(
                target.docker_backend(),
                ErrorKind::Failed,
                format!(
                    "no running container of service `{service}` in the Compose project `{}`",
                    project(target)
                ),
            )
        })
}

/// The engine's inspect document of a service's first container (or of a named container).
pub async fn inspect(target: &Target, service: &str) -> Result<ContainerInspectResponse, OpError> {
    let found = find(target, Some(&[service.to_string()])).await?;
    let first = found
        .first()
        .expect("find returns at least one container for a known service");
    inspect_one(target, &first.id).await
}

#[derive(Debug, Serialize)]
pub struct Version {
    pub address: String,
    pub api_version: String,
    pub server_version: String,
    pub project: String,
}

pub async fn version(target: &Target) -> Result<Version, OpError> {
    let docker = target.docker().await?;
    let v = docker.api.version().await.map_err(target.docker_err())?;
    Ok(Version {
        address: target.docker_backend().address.clone(),
        api_version: docker.api_version.clone(),
        server_version: v.version.unwrap_or_default(),
        project: project(target),
    })
}

/// The project's services and how many containers each has.
pub async fn services(target: &Target) -> Result<BTreeMap<String, i64>, OpError> {
    let mut out = BTreeMap::new();
    for f in find(target, None).await? {
        *out.entry(f.service).or_insert(0) += 1;
    }
    Ok(out)
}

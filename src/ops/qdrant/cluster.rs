//! Qdrant in distributed mode: the peers and their consensus (`GET /cluster`), and where each
//! shard of a collection lives (`GET /collections/{c}/cluster`, asked of every peer, since a
//! peer knows the points only of its own replicas). REST: `/cluster` has no public gRPC call.
//!
//! A peer is reached over REST at its p2p URI's host with qdrant.rest_url's scheme and port
//! (peers of a compose file share their ports), unless qdrant.peers names its URL by peer id or
//! by that host. The peer opsh is configured with is always reached at qdrant.rest_url.

use std::collections::BTreeMap;

use rhai::Dynamic;
use serde::Serialize;
use serde_json::Value;

use crate::config::key;
use crate::ops::Target;
use crate::ops::clients::qdrant::rest::Rest;
use crate::ops::error::{ErrorKind, OpError};

/// `GET /cluster`, as opsh reads it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cluster {
    /// false on a single node (Qdrant's `{"status": "disabled"}`).
    pub enabled: bool,
    /// The peer opsh asked (qdrant.rest_url).
    pub peer_id: Option<u64>,
    pub leader: Option<u64>,
    /// This peer's Raft role: Leader, Follower, Candidate, PreCandidate.
    pub role: Option<String>,
    pub term: Option<u64>,
    pub commit: Option<u64>,
    pub pending_operations: Option<u64>,
    /// The consensus thread: working, stopped or stopped_with_err.
    pub consensus: Option<String>,
    /// Why consensus stopped, when it stopped with an error.
    pub consensus_error: Option<String>,
    /// Every peer, by id.
    pub peers: Vec<Peer>,
    /// Peers this one fails to send Raft messages to.
    pub send_failures: Vec<SendFailure>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Peer {
    pub id: u64,
    /// Its p2p URI, as the cluster knows it (`http://qdrant-2:6335/`).
    pub uri: String,
    /// Where opsh reaches its REST API.
    pub rest_url: String,
    /// The setting that address comes from, for an error that cannot reach it.
    #[serde(skip)]
    pub rest_setting: String,
    /// The peer opsh asked.
    pub this: bool,
    pub leader: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SendFailure {
    /// The p2p URI messages fail to reach.
    pub uri: String,
    /// The peer with that URI, when it is one the cluster lists.
    pub peer_id: Option<u64>,
    pub count: u64,
    pub latest_error: Option<String>,
    pub latest_error_at: Option<String>,
}

impl Cluster {
    pub fn peer(&self, id: u64) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id)
    }
}

/// The cluster as the configured peer sees it; `enabled: false` on a single node.
pub async fn cluster(target: &Target) -> Result<Cluster, OpError> {
    let qdrant = target.qdrant().await?;
    let backend = target.qdrant_backend();
    let result = qdrant.rest.get_result(backend, "/cluster").await?;
    parse_cluster(&result, &qdrant.rest, &peer_urls(target)?).map_err(|why| {
        OpError::backend(
            backend,
            ErrorKind::Failed,
            format!("REST {}/cluster: {why}", qdrant.rest.shown()),
        )
    })
}

/// qdrant.peers: the URL of a peer by its id or by the host of its p2p URI.
fn peer_urls(target: &Target) -> Result<BTreeMap<String, String>, OpError> {
    let text = target.settings.text(key::QDRANT_PEERS).trim().to_string();
    if text.is_empty() {
        return Ok(BTreeMap::new());
    }
    let bad = |why: String| {
        OpError::invalid(format!(
            "{}: {why}; write it as {{\"<peer id or p2p host>\": \"http://host:6333\"}}",
            target.settings.origin(key::QDRANT_PEERS)
        ))
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = value
        .as_object()
        .ok_or_else(|| bad("not a table of peers".into()))?;
    map.iter()
        .map(|(k, v)| match v.as_str() {
            Some(url) if url::Url::parse(url).is_ok() => Ok((k.clone(), url.to_string())),
            _ => Err(bad(format!("`{k}`: {v} is not a URL"))),
        })
        .collect()
}

fn parse_cluster(
    v: &Value,
    rest: &Rest,
    named: &BTreeMap<String, String>,
) -> Result<Cluster, String> {
    match v["status"].as_str() {
        Some("disabled") => return Ok(Cluster::default()),
        Some("enabled") => {}
        other => return Err(format!("unexpected cluster status {other:?}")),
    }
    let peer_id = v["peer_id"].as_u64();
    let raft = &v["raft_info"];
    let leader = raft["leader"].as_u64();
    let mut peers: Vec<Peer> = v["peers"]
        .as_object()
        .ok_or("no peers listed")?
        .iter()
        .map(|(id, p)| {
            let id: u64 = id.parse().map_err(|_| format!("peer id {id:?}"))?;
            let uri = p["uri"].as_str().unwrap_or_default().to_string();
            let this = Some(id) == peer_id;
            let (rest_url, rest_setting) = peer_rest_url(id, &uri, this, rest, named);
            Ok(Peer {
                id,
                uri,
                rest_url,
                rest_setting,
                this,
                leader: Some(id) == leader,
            })
        })
        .collect::<Result<_, String>>()?;
    peers.sort_by_key(|p| p.id);
    let status = &v["consensus_thread_status"];
    let send_failures = v["message_send_failures"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(uri, f)| SendFailure {
                    uri: uri.clone(),
                    peer_id: peers.iter().find(|p| same_uri(&p.uri, uri)).map(|p| p.id),
                    count: f["count"].as_u64().unwrap_or_default(),
                    latest_error: f["latest_error"].as_str().map(str::to_string),
                    latest_error_at: f["latest_error_timestamp"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Cluster {
        enabled: true,
        peer_id,
        leader,
        role: raft["role"].as_str().map(str::to_string),
        term: raft["term"].as_u64(),
        commit: raft["commit"].as_u64(),
        pending_operations: raft["pending_operations"].as_u64(),
        consensus: status["consensus_thread_status"]
            .as_str()
            .map(str::to_string),
        consensus_error: status["err"].as_str().map(str::to_string),
        peers,
        send_failures,
    })
}

/// A result as Rhai sees it, its nested lists keeping their fields' order too (a REPL table of
/// `qdrant::cluster().peers` or `qdrant::shards(c).shards` shows them as the struct declares).
fn ordered<T: Serialize>(value: &T, nested: impl FnOnce(&mut rhai::Map)) -> Dynamic {
    let mut d = rhai::serde::to_dynamic(value).unwrap_or_default();
    if let Some(mut map) = d.write_lock::<rhai::Map>() {
        nested(&mut map);
    }
    crate::columns::attach(&mut d, &crate::columns::of_serialize(value));
    d
}

fn tag<T: Serialize>(map: &mut rhai::Map, field: &str, value: &T) {
    if let Some(d) = map.get_mut(field) {
        crate::columns::attach(d, &crate::columns::of_serialize(value));
    }
}

impl Cluster {
    /// As Rhai sees it: peers and send_failures in their fields' order.
    pub fn to_dynamic(&self) -> Dynamic {
        ordered(self, |m| {
            tag(m, "peers", &self.peers);
            tag(m, "send_failures", &self.send_failures);
        })
    }
}

impl Shards {
    /// As Rhai sees it: shards (and each one's replicas), transfers and unanswered in their
    /// fields' order.
    pub fn to_dynamic(&self) -> Dynamic {
        ordered(self, |m| {
            tag(m, "shards", &self.shards);
            tag(m, "transfers", &self.transfers);
            tag(m, "unanswered", &self.unanswered);
            if let Some(mut list) = m
                .get_mut("shards")
                .and_then(|d| d.write_lock::<rhai::Array>())
            {
                for (d, shard) in list.iter_mut().zip(&self.shards) {
                    if let Some(mut sm) = d.write_lock::<rhai::Map>() {
                        tag(&mut sm, "replicas", &shard.replicas);
                    }
                }
            }
        })
    }
}

fn same_uri(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Where a peer's REST API is: qdrant.rest_url for the peer opsh asked; qdrant.peers by id or
/// p2p host; else the p2p host with qdrant.rest_url's scheme and port.
fn peer_rest_url(
    id: u64,
    uri: &str,
    this: bool,
    rest: &Rest,
    named: &BTreeMap<String, String>,
) -> (String, String) {
    if this {
        return (rest.url.clone(), rest.setting.clone());
    }
    let host = url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    if let Some(url) = named
        .get(&id.to_string())
        .or_else(|| host.as_ref().and_then(|h| named.get(h)))
    {
        return (
            url.trim_end_matches('/').to_string(),
            format!("{} (peer {id})", key::QDRANT_PEERS.name()),
        );
    }
    let derived = url::Url::parse(&rest.url).ok().and_then(|mut base| {
        base.set_host(host.as_deref()).ok()?;
        Some(base.to_string().trim_end_matches('/').to_string())
    });
    let setting = format!(
        "{}: peer {id} is reached at its p2p host ({uri}) on qdrant.rest_url's port; name its URL in {} if that is not where its REST API is",
        rest.setting,
        key::QDRANT_PEERS.name()
    );
    (derived.unwrap_or_else(|| uri.to_string()), setting)
}

/// A collection's shards: each with its replicas, where they are and in what state.
#[derive(Clone, Debug, Serialize)]
pub struct Shards {
    pub collection: String,
    pub shard_count: u64,
    pub shards: Vec<Shard>,
    pub transfers: Vec<Transfer>,
    /// Peers whose own view could not be read (their replicas' points are then unknown), and why.
    pub unanswered: Vec<Unanswered>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Shard {
    pub shard_id: u64,
    /// Points of the shard, from an Active replica that answered.
    pub points: Option<u64>,
    pub replicas: Vec<Replica>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Replica {
    pub peer_id: u64,
    /// Qdrant's replica state: Active, Dead, Partial, Initializing, Listener, PartialSnapshot,
    /// Recovery, Resharding, ReshardingScaleDown, ActiveRead, ManualRecovery.
    pub state: String,
    /// Its points, as the peer holding it counts them (None when that peer did not answer).
    pub points: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Transfer {
    pub shard_id: u64,
    pub from: u64,
    pub to: u64,
    pub sync: bool,
    pub method: Option<String>,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Unanswered {
    pub peer_id: u64,
    pub rest_url: String,
    pub error: String,
}

impl Shard {
    /// The replicas a read or a snapshot can use.
    pub fn active(&self) -> impl Iterator<Item = &Replica> {
        self.replicas.iter().filter(|r| r.state == "Active")
    }
}

/// The REST API of a peer, with the configured credentials.
pub async fn peer_rest(target: &Target, peer: &Peer) -> Result<Rest, OpError> {
    let qdrant = target.qdrant().await?;
    Ok(qdrant.rest.at(&peer.rest_url, peer.rest_setting.clone()))
}

/// Where each shard of `collection` lives. On a single node: the one peer's local shards.
pub async fn shards(target: &Target, collection: &str) -> Result<Shards, OpError> {
    let cluster = cluster(target).await?;
    shards_in(target, &cluster, collection).await
}

/// As [`shards`], with the cluster already read.
pub async fn shards_in(
    target: &Target,
    cluster: &Cluster,
    collection: &str,
) -> Result<Shards, OpError> {
    let qdrant = target.qdrant().await?;
    let backend = target.qdrant_backend();
    let path = format!(
        "/collections/{}/cluster",
        crate::ops::qdrant::snapshots::encode(collection)
    );
    let own = qdrant
        .rest
        .get_result(backend, &path)
        .await
        .map_err(|e| not_found_as_collection(e, target, collection))?;
    // Every other peer's own view, at once: the points of its replicas.
    let others = cluster.peers.iter().filter(|p| !p.this).map(|peer| {
        let path = path.clone();
        async move {
            let rest = peer_rest(target, peer).await?;
            rest.get_result(backend, &path).await
        }
    });
    let answers = futures_util::future::join_all(others).await;
    let mut views = vec![own];
    let mut unanswered = Vec::new();
    for (peer, answer) in cluster.peers.iter().filter(|p| !p.this).zip(answers) {
        match answer {
            Ok(v) => views.push(v),
            Err(e) => unanswered.push(Unanswered {
                peer_id: peer.id,
                rest_url: crate::config::redact_url(&peer.rest_url),
                error: e.cause,
            }),
        }
    }
    parse_shards(collection, &views, unanswered).map_err(|why| {
        OpError::backend(
            backend,
            ErrorKind::Failed,
            format!("REST {}{path}: {why}", qdrant.rest.shown()),
        )
    })
}

fn not_found_as_collection(e: OpError, target: &Target, collection: &str) -> OpError {
    if e.kind == ErrorKind::NotFound {
        crate::ops::clients::qdrant::not_found(target.qdrant_backend(), collection)
    } else {
        e
    }
}

/// Merges the peers' views: the first view (the configured peer's) gives every replica's
/// state as the cluster's consensus has it; each holder's own view gives its points.
fn parse_shards(
    collection: &str,
    views: &[Value],
    unanswered: Vec<Unanswered>,
) -> Result<Shards, String> {
    let first = views.first().ok_or("no answer")?;
    let shard_count = first["shard_count"].as_u64().unwrap_or_default();
    // (shard, peer) → (state, points)
    let mut replicas: BTreeMap<(u64, u64), (String, Option<u64>)> = BTreeMap::new();
    for (i, view) in views.iter().enumerate() {
        let Some(peer) = view["peer_id"].as_u64() else {
            return Err("an answer without peer_id".into());
        };
        for local in view["local_shards"].as_array().into_iter().flatten() {
            let shard = local["shard_id"]
                .as_u64()
                .ok_or("a shard without shard_id")?;
            let state = local["state"].as_str().unwrap_or("Unknown").to_string();
            let points = local["points_count"].as_u64();
            let entry = replicas
                .entry((shard, peer))
                .or_insert_with(|| (state.clone(), None));
            entry.1 = points;
            if i == 0 {
                entry.0 = state;
            }
        }
        for remote in view["remote_shards"].as_array().into_iter().flatten() {
            let (Some(shard), Some(holder)) =
                (remote["shard_id"].as_u64(), remote["peer_id"].as_u64())
            else {
                return Err("a remote shard without shard_id or peer_id".into());
            };
            let state = remote["state"].as_str().unwrap_or("Unknown").to_string();
            let entry = replicas
                .entry((shard, holder))
                .or_insert_with(|| (state.clone(), None));
            if i == 0 {
                entry.0 = state;
            }
        }
    }
    let mut shards: BTreeMap<u64, Vec<Replica>> = (0..shard_count).map(|s| (s, vec![])).collect();
    for ((shard, peer_id), (state, points)) in replicas {
        shards.entry(shard).or_default().push(Replica {
            peer_id,
            state,
            points,
        });
    }
    let shards = shards
        .into_iter()
        .map(|(shard_id, replicas)| {
            let points = replicas
                .iter()
                .filter(|r| r.state == "Active")
                .find_map(|r| r.points);
            Shard {
                shard_id,
                points,
                replicas,
            }
        })
        .collect();
    let transfers = first["shard_transfers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Transfer {
            shard_id: t["shard_id"].as_u64().unwrap_or_default(),
            from: t["from"].as_u64().unwrap_or_default(),
            to: t["to"].as_u64().unwrap_or_default(),
            sync: t["sync"].as_bool().unwrap_or_default(),
            method: t["method"].as_str().map(str::to_string),
            comment: t["comment"].as_str().map(str::to_string),
        })
        .collect();
    Ok(Shards {
        collection: collection.to_string(),
        shard_count,
        shards,
        transfers,
        unanswered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rest() -> Rest {
        Rest::new(
            "https://qdrant-1.example:6333",
            "qdrant.rest_url".into(),
            None,
            None,
        )
    }

    /// The answer of a real Qdrant 1.18.3 peer of a 3-peer cluster with one peer killed
    /// (shapes as served by src/actix/api/cluster_api.rs).
    fn enabled() -> Value {
        json!({
            "status": "enabled", "peer_id": 5047499275433153u64,
            "peers": {
                "4460872519595557": {"uri": "http://qdrant-3:6335/"},
                "5047499275433153": {"uri": "http://qdrant-1:6335/"},
                "8503781871926617": {"uri": "http://qdrant-2:6335/"}
            },
            "raft_info": {"term": 1, "commit": 18, "pending_operations": 0,
                "leader": 5047499275433153u64, "role": "Leader", "is_voter": true},
            "consensus_thread_status": {"consensus_thread_status": "working",
                "last_update": "2026-12-02T15:24:56.998154718Z"},
            "message_send_failures": {"http://qdrant-3:6335/": {"count": 26,
                "latest_error": "Failed to connect to http://qdrant-3:6335/, error: transport error",
                "latest_error_timestamp": "2026-12-02T15:24:56.998518229Z"}}
        })
    }

    #[test]
    fn a_single_node_is_a_disabled_cluster() {
        let c = parse_cluster(&json!({"status": "disabled"}), &rest(), &BTreeMap::new()).unwrap();
        assert!(!c.enabled);
        assert!(c.peers.is_empty());
    }

    #[test]
    fn peers_are_reached_at_their_p2p_host_on_the_rest_port_unless_named() {
        let named = BTreeMap::from([("qdrant-2".to_string(), "http://10.0.0.2:16333".to_string())]);
        let c = parse_cluster(&enabled(), &rest(), &named).unwrap();
        assert!(c.enabled);
        assert_eq!(c.leader, Some(5047499275433153));
        assert_eq!(c.role.as_deref(), Some("Leader"));
        assert_eq!(c.consensus.as_deref(), Some("working"));
        let urls: Vec<(u64, &str, bool)> = c
            .peers
            .iter()
            .map(|p| (p.id, p.rest_url.as_str(), p.this))
            .collect();
        assert_eq!(
            urls,
            [
                (4460872519595557, "https://qdrant-3:6333", false),
                (5047499275433153, "https://qdrant-1.example:6333", true),
                (8503781871926617, "http://10.0.0.2:16333", false),
            ]
        );
        assert_eq!(c.send_failures.len(), 1);
        assert_eq!(c.send_failures[0].peer_id, Some(4460872519595557));
        assert_eq!(c.send_failures[0].count, 26);
    }

    #[test]
    fn a_stopped_consensus_keeps_its_error() {
        let mut v = enabled();
        v["consensus_thread_status"] =
            json!({"consensus_thread_status": "stopped_with_err", "err": "raft log corrupted"});
        let c = parse_cluster(&v, &rest(), &BTreeMap::new()).unwrap();
        assert_eq!(c.consensus.as_deref(), Some("stopped_with_err"));
        assert_eq!(c.consensus_error.as_deref(), Some("raft log corrupted"));
    }

    type ShardView<'a> = (u64, Vec<(u64, &'a str, Option<u64>)>, Option<u64>);

    #[test]
    fn shards_merge_the_states_of_the_asked_peer_and_the_points_of_each_holder() {
        // The asked peer (1) holds shards 0 and 1; peer 2 holds 0 and 2; peer 3 (dead) held 1
        // and 2; as a real 3-peer cluster answered with replication_factor 2.
        let asked = json!({"peer_id": 1, "shard_count": 3,
            "local_shards": [{"shard_id": 0, "points_count": 343, "state": "Active"},
                             {"shard_id": 1, "points_count": 393, "state": "Active"}],
            "remote_shards": [{"shard_id": 0, "peer_id": 2, "state": "Active"},
                              {"shard_id": 1, "peer_id": 3, "state": "Dead"},
                              {"shard_id": 2, "peer_id": 2, "state": "Active"},
                              {"shard_id": 2, "peer_id": 3, "state": "Dead"}],
            "shard_transfers": [{"shard_id": 2, "from": 2, "to": 3, "sync": false,
                                 "method": "stream_records"}]});
        let second = json!({"peer_id": 2, "shard_count": 3,
            "local_shards": [{"shard_id": 0, "points_count": 343, "state": "Active"},
                             {"shard_id": 2, "points_count": 364, "state": "Active"}],
            "remote_shards": [], "shard_transfers": []});
        let s = parse_shards("c", &[asked, second], vec![]).unwrap();
        assert_eq!(s.shard_count, 3);
        let view: Vec<ShardView> = s
            .shards
            .iter()
            .map(|sh| {
                (
                    sh.shard_id,
                    sh.replicas
                        .iter()
                        .map(|r| (r.peer_id, r.state.as_str(), r.points))
                        .collect(),
                    sh.points,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                (
                    0,
                    vec![(1, "Active", Some(343)), (2, "Active", Some(343))],
                    Some(343)
                ),
                (
                    1,
                    vec![(1, "Active", Some(393)), (3, "Dead", None)],
                    Some(393)
                ),
                (
                    2,
                    vec![(2, "Active", Some(364)), (3, "Dead", None)],
                    Some(364)
                ),
            ]
        );
        assert_eq!(s.transfers.len(), 1);
        assert_eq!(s.transfers[0].method.as_deref(), Some("stream_records"));
    }
}

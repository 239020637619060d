//! Distributed mode: peers, where each shard's replicas live, their states, and what a read or
//! a write through a peer meets when a replica is not readable or its peer is gone.
//!
//! All peers of a [`crate::Cluster`] run in one process over one [`crate::store::Store`], so a
//! point is stored once; "the replicas of shard s" are bookkeeping over that one copy:
//!
//! - placement: the replicas of shard `s` are on peers `(s + r) % n` for `r` in
//!   `0..replication_factor` (the double's rule; Qdrant spreads them its own way), plus any replica
//!   a shard snapshot upload added on another peer (Qdrant adds one, seen on 1.18.3);
//! - a point belongs to shard `fnv1a(id) % shard_number`: the double's own deterministic hash,
//!   not Qdrant's hash ring, so nothing may depend on which shard a point lands in;
//! - a replica is `Active` unless a test or a write to a stopped peer made it otherwise.
//!
//! A single node ([`crate::QdrantDouble::start`]) is a one-peer state with distributed mode
//! disabled: every shard is local, as on a real single node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use qdrant_client::qdrant as q;
use serde_json::{Value, json};
use tonic::Status;

use crate::errors::internal;
use crate::ids::PointKey;
use crate::store::Collection;

/// One peer as the others know it.
pub struct Peer {
    /// Qdrant's random peer id.
    pub peer_id: u64,
    /// Its p2p URI as Qdrant shows it: `http://127.0.0.1:<port>/`.
    pub p2p_uri: String,
    /// Its p2p address, `host:port`, as it appears in connection errors.
    pub p2p_addr: String,
    /// When it was stopped, if it was.
    stopped: Mutex<Option<SystemTime>>,
}

impl Peer {
    pub fn new(peer_id: u64, p2p_addr: String) -> Self {
        Peer {
            peer_id,
            p2p_uri: format!("http://{p2p_addr}/"),
            p2p_addr,
            stopped: Mutex::new(None),
        }
    }

    fn stopped_at(&self) -> Option<SystemTime> {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped_at().is_some()
    }
}

/// A shard transfer in progress, as `GET /collections/{c}/cluster` lists it.
#[derive(Clone, Debug)]
struct Transfer {
    collection: String,
    shard_id: u32,
    from: u64,
    to: u64,
}

#[derive(Default)]
struct Replicas {
    /// States other than Active, by (collection, shard, peer).
    states: HashMap<(String, u32, u64), q::ReplicaState>,
    /// Replicas beyond the placement rule (a shard snapshot uploaded to another peer).
    extra: BTreeSet<(String, u32, u64)>,
    transfers: Vec<Transfer>,
}

/// The state every peer of one double shares.
pub struct ClusterState {
    /// Distributed mode (`cluster.enabled`); false for a single node.
    pub enabled: bool,
    /// The peers in start order.
    pub peers: Vec<Peer>,
    replicas: Mutex<Replicas>,
    /// Raft's commit index: grows with every consensus operation the double models.
    commit: AtomicU64,
}

/// One replica of one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replica {
    pub shard_id: u32,
    pub peer_id: u64,
    pub state: q::ReplicaState,
}

/// Qdrant's state name of a replica (`ReplicaState` serialises by variant name, as the proto's).
pub fn state_name(state: q::ReplicaState) -> &'static str {
    state.as_str_name()
}

/// Which states serve reads: Qdrant's `ReplicaState::is_readable`
/// (lib/collection/src/shards/replica_set/replica_set_state.rs): Active, ReshardingScaleDown,
/// ActiveRead. ManualRecovery (newer than that file) is "equivalent to Partial" per the proto.
fn is_readable(state: q::ReplicaState) -> bool {
    matches!(
        state,
        q::ReplicaState::Active
            | q::ReplicaState::ReshardingScaleDown
            | q::ReplicaState::ActiveRead
    )
}

/// Which states take updates: Qdrant's `ReplicaState::is_updatable` (same file).
fn is_updatable(state: q::ReplicaState) -> bool {
    matches!(
        state,
        q::ReplicaState::Active
            | q::ReplicaState::Partial
            | q::ReplicaState::Initializing
            | q::ReplicaState::Listener
            | q::ReplicaState::Resharding
            | q::ReplicaState::ReshardingScaleDown
            | q::ReplicaState::ActiveRead
    )
}

/// The shard of a point: FNV-1a over the id's kind and value, modulo the shard count. The
/// double's own rule (Qdrant uses a hash ring); deterministic across runs and platforms.
pub fn shard_of(id: &PointKey, shard_number: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    match id {
        PointKey::Num(n) => {
            eat(&[0]);
            eat(&n.to_le_bytes());
        }
        PointKey::Uuid(u) => {
            eat(&[1]);
            eat(&u.to_le_bytes());
        }
    }
    (hash % u64::from(shard_number.max(1))) as u32
}

/// Qdrant's ServiceError text of a connection refused by a stopped peer, as a remote shard
/// reports it (seen on 1.18.3 after killing a peer: "Tonic status error: code: 'The service is
/// currently unavailable', message: \"Failed to connect to http://127.0.0.1:43335/, error:
/// transport error\"").
fn unreachable(peer: &Peer) -> String {
    format!(
        "Service internal error: Tonic status error: code: 'The service is currently unavailable', message: \"Failed to connect to {}, error: transport error\"",
        peer.p2p_uri
    )
}

impl ClusterState {
    /// A single node: one peer, distributed mode disabled.
    pub fn single(peer_id: u64) -> Self {
        Self::new(false, vec![Peer::new(peer_id, String::new())])
    }

    /// A cluster of these peers (the first is the leader).
    pub fn new(enabled: bool, peers: Vec<Peer>) -> Self {
        let commit = 3 * peers.len() as u64;
        ClusterState {
            enabled,
            peers,
            replicas: Mutex::new(Replicas::default()),
            commit: AtomicU64::new(commit),
        }
    }

    fn replicas(&self) -> std::sync::MutexGuard<'_, Replicas> {
        self.replicas.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.commit.fetch_add(1, Ordering::Relaxed);
    }

    fn peer(&self, peer_id: u64) -> Option<&Peer> {
        self.peers.iter().find(|p| p.peer_id == peer_id)
    }

    /// Marks a peer stopped (its ports are closed by the caller).
    pub fn stop(&self, index: usize) {
        *self.peers[index]
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(SystemTime::now());
    }

    /// Fills what Qdrant fills in a create request: shard_number defaults to the number of peers
    /// in distributed mode and 1 on a single node, replication_factor to 1 (both checked on
    /// 1.18.3: a 3-peer cluster gave `"shard_number":3,"replication_factor":1`).
    pub fn fill_defaults(&self, request: &mut q::CreateCollection) {
        let peers = if self.enabled {
            self.peers.len() as u32
        } else {
            1
        };
        request.shard_number = Some(request.shard_number.unwrap_or(peers).max(1));
        request.replication_factor = Some(request.replication_factor.unwrap_or(1).max(1));
        self.bump();
    }

    /// Forgets a collection's states, extra replicas and transfers (created anew or deleted).
    pub fn forget(&self, collection: &str) {
        let mut r = self.replicas();
        r.states.retain(|(c, _, _), _| c != collection);
        r.extra.retain(|(c, _, _)| c != collection);
        r.transfers.retain(|t| t.collection != collection);
    }

    /// Every replica of a collection, by shard then peer id.
    pub fn replicas_of(&self, name: &str, c: &Collection) -> Vec<Replica> {
        let r = self.replicas();
        let n = self.peers.len() as u32;
        let mut placed: BTreeMap<(u32, u64), q::ReplicaState> = BTreeMap::new();
        for shard_id in 0..c.shard_number {
            let copies = if self.enabled {
                c.replication_factor.min(n)
            } else {
                1
            };
            for k in 0..copies {
                let peer = &self.peers[((shard_id + k) % n) as usize];
                placed.insert((shard_id, peer.peer_id), q::ReplicaState::Active);
            }
        }
        for (_, shard_id, peer_id) in r.extra.iter().filter(|(c, _, _)| c == name) {
            placed.insert((*shard_id, *peer_id), q::ReplicaState::Active);
        }
        for ((_, shard_id, peer_id), state) in r.states.iter().filter(|((c, _, _), _)| c == name) {
            if let Some(s) = placed.get_mut(&(*shard_id, *peer_id)) {
                *s = *state;
            }
        }
        placed
            .into_iter()
            .map(|((shard_id, peer_id), state)| Replica {
                shard_id,
                peer_id,
                state,
            })
            .collect()
    }

    /// The shards with a replica on this peer.
    pub fn local_shards(&self, name: &str, c: &Collection, peer_id: u64) -> BTreeSet<u32> {
        self.replicas_of(name, c)
            .into_iter()
            .filter(|r| r.peer_id == peer_id)
            .map(|r| r.shard_id)
            .collect()
    }

    /// Sets a replica's state (a test's `set_replica_state`, or a failed write).
    pub fn set_state(&self, collection: &str, shard_id: u32, peer_id: u64, state: q::ReplicaState) {
        let mut r = self.replicas();
        let key = (collection.to_string(), shard_id, peer_id);
        if state == q::ReplicaState::Active {
            r.states.remove(&key);
        } else {
            r.states.insert(key, state);
        }
        drop(r);
        self.bump();
    }

    /// Adds a replica of a shard on a peer (an uploaded shard snapshot), Active.
    pub fn add_replica(&self, collection: &str, shard_id: u32, peer_id: u64) {
        let mut r = self.replicas();
        let key = (collection.to_string(), shard_id, peer_id);
        r.states.remove(&key);
        r.extra.insert(key);
        drop(r);
        self.bump();
    }

    /// Starts a replication of a shard: as Qdrant's `replicate_shard` with its default
    /// method on 1.18.3, the transfer shows `"sync":true,"method":"snapshot"` and the receiving
    /// replica is in state Recovery until it ends (seen on the real cluster).
    pub fn start_transfer(&self, collection: &str, shard_id: u32, from: u64, to: u64) {
        {
            let mut r = self.replicas();
            r.transfers.push(Transfer {
                collection: collection.to_string(),
                shard_id,
                from,
                to,
            });
            let key = (collection.to_string(), shard_id, to);
            r.extra.insert(key.clone());
            r.states.insert(key, q::ReplicaState::Recovery);
        }
        self.bump();
    }

    /// Checks that every shard a read needs can be read through `this` peer, as Qdrant's
    /// `execute_and_resolve_read_operation` (lib/collection/src/shards/replica_set/
    /// execute_read_operation.rs): no readable replica at all is "The replica set for shard {s}
    /// on peer {this} does not have enough active replicas"; readable replicas whose peers are
    /// all gone is "{k} of {k} read operations failed:" and one "\n  {error}" per replica tried.
    /// Both are ServiceErrors: gRPC Internal, REST 500, with "Service internal error: " first.
    pub fn check_read(&self, name: &str, c: &Collection, this: u64) -> Result<(), Status> {
        let replicas = self.replicas_of(name, c);
        for shard_id in 0..c.shard_number {
            let readable: Vec<&Replica> = replicas
                .iter()
                .filter(|r| r.shard_id == shard_id && is_readable(r.state))
                .collect();
            if readable.is_empty() {
                return Err(internal(format!(
                    "The replica set for shard {shard_id} on peer {this} does not have enough active replicas"
                )));
            }
            let stopped: Vec<&Peer> = readable
                .iter()
                .filter_map(|r| self.peer(r.peer_id))
                .filter(|p| p.is_stopped())
                .collect();
            if stopped.len() == readable.len() {
                let mut message = format!("{k} of {k} read operations failed:", k = stopped.len());
                for peer in stopped {
                    message.push_str("\n  ");
                    message.push_str(&unreachable(peer));
                }
                return Err(internal(message));
            }
        }
        Ok(())
    }

    /// Applies the consequences of a write to these shards through a live peer and returns the
    /// shards that refuse it, with Qdrant's error. As Qdrant: an updatable replica on a stopped
    /// peer is marked Dead when another Active replica of the shard took the write; when none
    /// did, the shard fails and the whole request answers "{k} out of {n} shards failed to apply
    /// operation. First error captured: {error}" (`CollectionError::InconsistentShardFailure`,
    /// lib/collection/src/operations/types.rs), or that error alone when the write touched one
    /// shard (both seen on 1.18.3, replication_factor 1 with the holder killed; the replica
    /// stays Active there, Qdrant never deactivates the last one). A shard with no updatable
    /// replica at all fails with "The replica set for shard {s} on peer {this} has no active
    /// replica" (`ShardReplicaSet::update_impl`, lib/collection/src/shards/replica_set/update.rs).
    pub fn check_write(
        &self,
        name: &str,
        c: &Collection,
        shards: &BTreeSet<u32>,
        this: u64,
    ) -> (BTreeSet<u32>, Option<Status>) {
        let replicas = self.replicas_of(name, c);
        let mut failed = BTreeSet::new();
        let mut first_error = None;
        let mut dead = Vec::new();
        for &shard_id in shards {
            let of_shard: Vec<&Replica> = replicas
                .iter()
                .filter(|r| r.shard_id == shard_id && is_updatable(r.state))
                .collect();
            let live_active = of_shard.iter().any(|r| {
                r.state == q::ReplicaState::Active
                    && self.peer(r.peer_id).is_some_and(|p| !p.is_stopped())
            });
            let gone: Vec<&&Replica> = of_shard
                .iter()
                .filter(|r| self.peer(r.peer_id).is_some_and(Peer::is_stopped))
                .collect();
            if live_active {
                dead.extend(gone.iter().map(|r| (r.shard_id, r.peer_id)));
            } else if let Some(r) = gone.first() {
                failed.insert(shard_id);
                if first_error.is_none() {
                    first_error = self.peer(r.peer_id).map(unreachable);
                }
            } else if of_shard.is_empty() {
                failed.insert(shard_id);
                if first_error.is_none() {
                    first_error = Some(format!(
                        "Service internal error: The replica set for shard {shard_id} on peer {this} has no active replica"
                    ));
                }
            }
        }
        for (shard_id, peer_id) in dead {
            self.set_state(name, shard_id, peer_id, q::ReplicaState::Dead);
        }
        let error = first_error.map(|first| {
            if shards.len() == 1 {
                Status::internal(first)
            } else {
                internal(format!(
                    "{} out of {} shards failed to apply operation. First error captured: {first}",
                    failed.len(),
                    shards.len()
                ))
            }
        });
        (failed, error)
    }

    /// `GET /cluster` on peer `index`: Qdrant's `ClusterStatus` (lib/storage/src/types.rs,
    /// src/actix/api/cluster_api.rs). Shapes seen on 1.18.3; a single node answers
    /// `{"status":"disabled"}`. Only the leader sends raft messages to every peer, so only it
    /// reports a stopped peer under message_send_failures, keyed by the peer's URI, with
    /// `count` (one per failed send; the double counts one per 100 ms since the stop, as raft's
    /// heartbeats come), `latest_error` and `latest_error_timestamp` (Qdrant's
    /// `MessageSendErrors`, lib/storage/src/types.rs).
    pub fn status_json(&self, index: usize) -> Value {
        if !self.enabled {
            return json!({"status": "disabled"});
        }
        let now = chrono::Utc::now();
        let leader_index = self.peers.iter().position(|p| !p.is_stopped()).unwrap_or(0);
        let leader = &self.peers[leader_index];
        let me = &self.peers[index];
        let peers: serde_json::Map<String, Value> = self
            .peers
            .iter()
            .map(|p| (p.peer_id.to_string(), json!({"uri": p.p2p_uri})))
            .collect();
        let mut failures = serde_json::Map::new();
        if index == leader_index {
            for p in self.peers.iter().filter(|p| p.peer_id != me.peer_id) {
                if let Some(at) = p.stopped_at() {
                    let since = SystemTime::now()
                        .duration_since(at)
                        .unwrap_or_default()
                        .as_millis() as u64;
                    failures.insert(
                        p.p2p_uri.clone(),
                        json!({
                            "count": 1 + since / 100,
                            "latest_error": format!(
                                "Error in closure supplied to transport channel pool: code: 'The service is currently unavailable', message: \"tcp connect error\", source: tonic::transport::Error(Transport, ConnectError(ConnectError(\"tcp connect error\", {}, Os {{ code: 111, kind: ConnectionRefused, message: \"Connection refused\" }})))",
                                p.p2p_addr
                            ),
                            "latest_error_timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                        }),
                    );
                }
            }
        }
        json!({
            "status": "enabled",
            "peer_id": me.peer_id,
            "peers": peers,
            "raft_info": {
                "term": 1 + leader_index as u64,
                "commit": self.commit.load(Ordering::Relaxed),
                "pending_operations": 0,
                "leader": leader.peer_id,
                "role": if index == leader_index { "Leader" } else { "Follower" },
                "is_voter": true,
            },
            "consensus_thread_status": {
                "consensus_thread_status": "working",
                "last_update": now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            },
            "message_send_failures": failures,
        })
    }

    /// The collection's cluster info as peer `this` sees it: Qdrant's
    /// `CollectionClusterInfo` (lib/collection/src/operations/types.rs; gRPC
    /// `CollectionClusterInfoResponse` in lib/api/src/grpc/proto/collections.proto). Local shards
    /// carry their points count, remote ones their peer; both by shard then peer id (Qdrant's
    /// own order of remotes follows a hash map).
    pub fn collection_info(
        &self,
        name: &str,
        c: &Collection,
        this: u64,
    ) -> q::CollectionClusterInfoResponse {
        let replicas = self.replicas_of(name, c);
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for id in c.points.keys() {
            *counts.entry(shard_of(id, c.shard_number)).or_default() += 1;
        }
        let local_shards = replicas
            .iter()
            .filter(|r| r.peer_id == this)
            .map(|r| q::LocalShardInfo {
                shard_id: r.shard_id,
                points_count: counts.get(&r.shard_id).copied().unwrap_or(0),
                state: r.state as i32,
                shard_key: None,
            })
            .collect();
        let remote_shards = replicas
            .iter()
            .filter(|r| r.peer_id != this)
            .map(|r| q::RemoteShardInfo {
                shard_id: r.shard_id,
                peer_id: r.peer_id,
                state: r.state as i32,
                shard_key: None,
            })
            .collect();
        let shard_transfers = self
            .replicas()
            .transfers
            .iter()
            .filter(|t| t.collection == name)
            .map(|t| q::ShardTransferInfo {
                shard_id: t.shard_id,
                to_shard_id: None,
                from: t.from,
                to: t.to,
                sync: true,
            })
            .collect();
        q::CollectionClusterInfoResponse {
            peer_id: this,
            shard_count: u64::from(c.shard_number),
            local_shards,
            remote_shards,
            shard_transfers,
            resharding_operations: Vec::new(),
            time: 0.0,
        }
    }
}

/// The REST form of [`ClusterState::collection_info`], as 1.18.3 answers
/// `GET /collections/{c}/cluster`: states by name, transfers with `method` and `comment`
/// (`"snapshot"` and `""` for a replication just started).
pub fn collection_info_json(info: &q::CollectionClusterInfoResponse) -> Value {
    let state = |s: i32| {
        q::ReplicaState::try_from(s)
            .map(state_name)
            .unwrap_or("Active")
    };
    json!({
        "peer_id": info.peer_id,
        "shard_count": info.shard_count,
        "local_shards": info.local_shards.iter().map(|s| json!({
            "shard_id": s.shard_id, "points_count": s.points_count, "state": state(s.state),
        })).collect::<Vec<_>>(),
        "remote_shards": info.remote_shards.iter().map(|s| json!({
            "shard_id": s.shard_id, "peer_id": s.peer_id, "state": state(s.state),
        })).collect::<Vec<_>>(),
        "shard_transfers": info.shard_transfers.iter().map(|t| json!({
            "shard_id": t.shard_id, "from": t.from, "to": t.to, "sync": t.sync,
            "method": "snapshot", "comment": "",
        })).collect::<Vec<_>>(),
    })
}

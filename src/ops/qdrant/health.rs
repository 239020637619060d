//! The health of a distributed Qdrant, judged once here for every procedure that reports it
//! (qdrant-stats, test-health, check-data): what a shard's replica states, the transfers in
//! progress, the peers' reachability and the consensus say. A single node has no findings.
//!
//! Which replica states serve reads: Qdrant's `ReplicaState::is_readable`
//! (lib/collection/src/shards/replica_set/replica_set_state.rs): Active, ReshardingScaleDown and
//! ActiveRead; Dead, Partial, Initializing, Listener, PartialSnapshot, Recovery, Resharding and
//! ManualRecovery do not.

use serde::Serialize;

use crate::ops::Target;
use crate::ops::error::OpError;

use super::cluster::{Cluster, Shards, cluster, shards_in};

/// One thing wrong with the cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// "critical" or "warning", as a report's check takes it.
    pub level: String,
    /// The report's check name: "qdrant cluster", "qdrant peer <id>" or "<collection> shard <id>".
    pub check: String,
    pub collection: Option<String>,
    pub shard: Option<u64>,
    pub peer: Option<u64>,
    pub text: String,
}

const CRITICAL: &str = "critical";
const WARNING: &str = "warning";

/// States whose replica answers reads.
fn readable(state: &str) -> bool {
    matches!(state, "Active" | "ReshardingScaleDown" | "ActiveRead")
}

/// States that are no finding: serving, or a listener replica (one that receives updates and
/// serves no reads by design).
fn settled(state: &str) -> bool {
    matches!(state, "Active" | "Listener")
}

/// The cluster's findings, worst first; empty on a single node and on a healthy cluster.
pub async fn cluster_health(target: &Target) -> Result<Vec<Finding>, OpError> {
    let c = cluster(target).await?;
    if !c.enabled {
        return Ok(Vec::new());
    }
    let mut all = Vec::new();
    for name in super::names(target).await? {
        all.push(shards_in(target, &c, &name).await?);
    }
    Ok(judge(&c, &all))
}

/// The rules, on what was read.
pub fn judge(c: &Cluster, collections: &[Shards]) -> Vec<Finding> {
    let mut out = Vec::new();
    let cluster_wide = |level: &str, text: String| Finding {
        level: level.into(),
        check: "qdrant cluster".into(),
        collection: None,
        shard: None,
        peer: None,
        text,
    };
    match c.consensus.as_deref() {
        Some("working") => {}
        status => {
            let why = c
                .consensus_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            out.push(cluster_wide(
                CRITICAL,
                format!(
                    "consensus {} on peer {}{why}: the cluster cannot change (no collection, shard or peer operation goes through)",
                    status.unwrap_or("unknown"),
                    c.peer_id.map(|p| p.to_string()).unwrap_or_default()
                ),
            ));
        }
    }
    // Peers: the ones the asked peer fails to send to, and the ones opsh could not ask.
    for peer in &c.peers {
        let mut why = Vec::new();
        for f in c
            .send_failures
            .iter()
            .filter(|f| f.peer_id == Some(peer.id))
        {
            why.push(format!(
                "peer {} fails to send it messages ({} failed{})",
                c.peer_id.map(|p| p.to_string()).unwrap_or_default(),
                f.count,
                f.latest_error
                    .as_deref()
                    .map(|e| format!(", latest: {e}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(u) = collections
            .iter()
            .flat_map(|s| &s.unanswered)
            .find(|u| u.peer_id == peer.id)
        {
            why.push(format!(
                "opsh could not read it at {}: {}",
                u.rest_url, u.error
            ));
        }
        if !why.is_empty() {
            out.push(Finding {
                level: WARNING.into(),
                check: format!("qdrant peer {}", peer.id),
                collection: None,
                shard: None,
                peer: Some(peer.id),
                text: format!("{} ({}): {}", peer.id, peer.uri, why.join("; ")),
            });
        }
    }
    for f in c.send_failures.iter().filter(|f| f.peer_id.is_none()) {
        out.push(Finding {
            level: WARNING.into(),
            check: "qdrant cluster".into(),
            collection: None,
            shard: None,
            peer: None,
            text: format!(
                "messages to {} fail ({} failed), a URI no listed peer has",
                f.uri, f.count
            ),
        });
    }
    for s in collections {
        for shard in &s.shards {
            let at = |peer: Option<u64>| Finding {
                level: String::new(),
                check: format!("{} shard {}", s.collection, shard.shard_id),
                collection: Some(s.collection.clone()),
                shard: Some(shard.shard_id),
                peer,
                text: String::new(),
            };
            if !shard.replicas.iter().any(|r| readable(&r.state)) {
                let states: Vec<String> = shard
                    .replicas
                    .iter()
                    .map(|r| format!("{} on peer {}", r.state, r.peer_id))
                    .collect();
                out.push(Finding {
                    level: CRITICAL.into(),
                    text: format!(
                        "no Active replica ({}): its points cannot be read",
                        if states.is_empty() {
                            "none listed".to_string()
                        } else {
                            states.join(", ")
                        }
                    ),
                    ..at(None)
                });
            }
            for r in &shard.replicas {
                if r.state == "Dead" {
                    out.push(Finding {
                        level: CRITICAL.into(),
                        text: format!(
                            "replica on peer {} is Dead: it takes no writes until Qdrant recovers it",
                            r.peer_id
                        ),
                        ..at(Some(r.peer_id))
                    });
                } else if !settled(&r.state) {
                    let transfer = s.transfers.iter().find(|t| {
                        t.shard_id == shard.shard_id && (t.to == r.peer_id || t.from == r.peer_id)
                    });
                    out.push(Finding {
                        level: WARNING.into(),
                        text: format!(
                            "replica on peer {} is {}{}",
                            r.peer_id,
                            r.state,
                            if transfer.is_some() {
                                " (in transfer)"
                            } else {
                                ""
                            }
                        ),
                        ..at(Some(r.peer_id))
                    });
                }
            }
            for t in s.transfers.iter().filter(|t| t.shard_id == shard.shard_id) {
                out.push(Finding {
                    level: WARNING.into(),
                    text: format!(
                        "transfer from peer {} to peer {} in progress{}{}",
                        t.from,
                        t.to,
                        t.method
                            .as_deref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default(),
                        t.comment
                            .as_deref()
                            .filter(|c| !c.is_empty())
                            .map(|c| format!(": {c}"))
                            .unwrap_or_default()
                    ),
                    ..at(Some(t.to))
                });
            }
        }
    }
    // Worst first, then in the order found.
    out.sort_by_key(|f| f.level != CRITICAL);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::qdrant::{Peer, Replica, SendFailure, Shard, Transfer, Unanswered};

    fn peer(id: u64) -> Peer {
        Peer {
            id,
            uri: format!("http://q{id}:6335/"),
            rest_url: format!("http://q{id}:6333"),
            rest_setting: String::new(),
            this: id == 1,
            leader: id == 1,
        }
    }

    fn healthy() -> Cluster {
        Cluster {
            enabled: true,
            peer_id: Some(1),
            leader: Some(1),
            consensus: Some("working".into()),
            peers: vec![peer(1), peer(2), peer(3)],
            ..Cluster::default()
        }
    }

    fn shards(states: &[&[(u64, &str)]]) -> Shards {
        Shards {
            collection: "c".into(),
            shard_count: states.len() as u64,
            shards: states
                .iter()
                .enumerate()
                .map(|(i, rs)| Shard {
                    shard_id: i as u64,
                    replicas: rs
                        .iter()
                        .map(|(p, s)| Replica {
                            peer_id: *p,
                            state: s.to_string(),
                            points: None,
                        })
                        .collect(),
                    points: None,
                })
                .collect(),
            transfers: vec![],
            unanswered: vec![],
        }
    }

    fn lines(f: &[Finding]) -> Vec<String> {
        f.iter()
            .map(|f| format!("{} {}: {}", f.level, f.check, f.text))
            .collect()
    }

    #[test]
    fn a_healthy_cluster_has_no_finding() {
        let s = shards(&[
            &[(1, "Active"), (2, "Active")],
            &[(2, "Active"), (3, "Listener")],
        ]);
        assert!(judge(&healthy(), &[s]).is_empty());
    }

    #[test]
    fn a_shard_without_an_active_replica_and_a_dead_replica_are_critical() {
        let s = shards(&[
            &[(1, "Dead"), (2, "Partial")],
            &[(2, "Active"), (3, "Dead")],
        ]);
        assert_eq!(
            lines(&judge(&healthy(), &[s])),
            [
                "critical c shard 0: no Active replica (Dead on peer 1, Partial on peer 2): its points cannot be read",
                "critical c shard 0: replica on peer 1 is Dead: it takes no writes until Qdrant recovers it",
                "critical c shard 1: replica on peer 3 is Dead: it takes no writes until Qdrant recovers it",
                "warning c shard 0: replica on peer 2 is Partial",
            ]
        );
    }

    #[test]
    fn transfers_recovering_replicas_and_unreachable_peers_are_warnings_that_name_them() {
        let mut s = shards(&[&[(1, "Active"), (3, "Partial")], &[(2, "ActiveRead")]]);
        s.transfers.push(Transfer {
            shard_id: 0,
            from: 1,
            to: 3,
            sync: false,
            method: Some("stream_records".into()),
            comment: None,
        });
        s.unanswered.push(Unanswered {
            peer_id: 2,
            rest_url: "http://q2:6333".into(),
            error: "connection refused".into(),
        });
        let mut c = healthy();
        c.send_failures.push(SendFailure {
            uri: "http://q2:6335/".into(),
            peer_id: Some(2),
            count: 26,
            latest_error: Some("transport error".into()),
            latest_error_at: None,
        });
        let found = judge(&c, &[s]);
        assert_eq!(
            lines(&found),
            [
                "warning qdrant peer 2: 2 (http://q2:6335/): peer 1 fails to send it messages (26 failed, latest: transport error); opsh could not read it at http://q2:6333: connection refused",
                "warning c shard 0: replica on peer 3 is Partial (in transfer)",
                "warning c shard 0: transfer from peer 1 to peer 3 in progress (stream_records)",
                "warning c shard 1: replica on peer 2 is ActiveRead",
            ]
        );
        assert_eq!(
            (
                found[1].collection.as_deref(),
                found[1].shard,
                found[1].peer
            ),
            (Some("c"), Some(0), Some(3))
        );
    }

    #[test]
    fn a_consensus_not_working_is_critical() {
        let mut c = healthy();
        c.consensus = Some("stopped_with_err".into());
        c.consensus_error = Some("raft log corrupted".into());
        assert_eq!(
            lines(&judge(&c, &[])),
            [
                "critical qdrant cluster: consensus stopped_with_err on peer 1: raft log corrupted: the cluster cannot change (no collection, shard or peer operation goes through)"
            ]
        );
    }
}

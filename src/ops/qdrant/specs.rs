//! The `qdrant::` functions as data: parameters, options, docs and examples (registered in
//! mod.rs).

use crate::ops::budget::MAX_DELETE;
use crate::ops::spec::{Default, Example, Kind, Opt, Param, Spec};

const COLLECTION: Param = Param::new("collection", Kind::Str, "the collection");

pub(super) static PING: Spec = Spec {
    module: "qdrant",
    name: "ping",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Connects to Qdrant (gRPC, at qdrant.grpc_url as resolved from qdrant.url) and returns \
          address, version, client_version and \
          compatibility (empty, or why the server is outside the Qdrant versions opsh is tested \
          against, 1.18 to 1.20; also warned once on stderr).",
    examples: &[Example::new(
        "let p = qdrant::ping(); [p.version, p.compatibility]",
        r#"["1.20.0", ""]"#,
    )],
};

pub(super) static COLLECTIONS: Spec = Spec {
    module: "qdrant",
    name: "collections",
    params: &[],
    options: &[],
    returns: "Array",
    doc: "Every collection, by name: name, status, points, indexed_vectors, segments, vectors \
          (name, size, distance each), vector_size and distance (of the first vector).",
    examples: &[Example::new(
        "qdrant::collections().map(|c| [c.name, c.points, c.vector_size, c.distance])",
        r#"[["youtube_content", 4, 4, "Cosine"], ["youtube_summaries", 2, 4, "Cosine"]]"#,
    )],
};

pub(super) static INFO: Spec = Spec {
    module: "qdrant",
    name: "info",
    params: &[COLLECTION],
    options: &[],
    returns: "Map",
    doc: "One collection's status, counts and vector configuration (as in qdrant::collections); \
          a missing collection is a not_found error naming it.",
    examples: &[Example::new(
        r#"let i = qdrant::info("youtube_content"); [i.status, i.points, i.vector_size, i.distance]"#,
        r#"["green", 4, 4, "Cosine"]"#,
    )],
};

pub(super) static COUNT: Spec = Spec {
    module: "qdrant",
    name: "count",
    params: &[COLLECTION],
    options: &[Opt::new(
        "exact",
        Kind::Bool,
        Default::Value("true"),
        "count exactly (false: Qdrant's estimate)",
    )],
    returns: "i64",
    doc: "The number of points in a collection.",
    examples: &[Example::new(r#"qdrant::count("youtube_content")"#, "4")],
};

const PAGE_SIZE: Opt = Opt::new(
    "page_size",
    Kind::Int,
    Default::Value("10000"),
    "points per scroll request",
);

pub(super) static IDS: Spec = Spec {
    module: "qdrant",
    name: "ids",
    params: &[COLLECTION],
    options: &[PAGE_SIZE],
    returns: "Array",
    doc: "Every point id of a collection as text, in Qdrant's order (numbers first, then UUIDs, \
          hyphenated lowercase), by scrolling without payload or vectors. The whole list is \
          held (about 200 MB per million ids as Rhai strings): walk a large collection with \
          qdrant::ids_page instead.",
    examples: &[Example::new(
        r#"qdrant::ids("youtube_content", #{page_size: 2})"#,
        r#"["7", "4a7d1ed4-1447-4e40-33ac-29ccb8653d9b", "6f1ed002-ab5d-5c5c-8a8f-2f6a3c0f7e01", "9b2c58c1-1e7f-5a4e-9d8e-0a1b2c3d4e5f"]"#,
    )],
};

pub(super) static IDS_PAGE: Spec = Spec {
    module: "qdrant",
    name: "ids_page",
    params: &[COLLECTION],
    options: &[
        Opt::new(
            "offset",
            Kind::Any,
            Default::None,
            "the id to start at (a page's `next`); absent: the first",
        ),
        PAGE_SIZE,
    ],
    returns: "Map",
    doc: "One page of a collection's point ids, for walking a large collection with bounded \
          memory: ids (as qdrant::ids gives them) and next, the offset of the following page (() \
          after the last). `let p = qdrant::ids_page(c); loop { …; if p.next == () { break } p = \
          qdrant::ids_page(c, #{offset: p.next}) }`.",
    examples: &[
        Example::new(
            r#"qdrant::ids_page("youtube_content", #{page_size: 2})"#,
            r#"{"ids": ["7", "4a7d1ed4-1447-4e40-33ac-29ccb8653d9b"], "next": "6f1ed002-ab5d-5c5c-8a8f-2f6a3c0f7e01"}"#,
        ),
        Example::new(
            r#"qdrant::ids_page("youtube_content", #{offset: "6f1ed002-ab5d-5c5c-8a8f-2f6a3c0f7e01"}).next"#,
            "null",
        ),
    ],
};

pub(super) static GET: Spec = Spec {
    module: "qdrant",
    name: "get",
    params: &[
        COLLECTION,
        Param::new(
            "ids",
            Kind::Array,
            "point ids: integers or UUIDs in any form Qdrant accepts",
        ),
    ],
    options: &[Opt::new(
        "payload",
        Kind::Bool,
        Default::Value("true"),
        "include each point's payload",
    )],
    returns: "Array",
    doc: "The points among ids that exist, in Qdrant's id order: id (as Qdrant answers it) and \
          payload.",
    examples: &[Example::new(
        r#"qdrant::get("youtube_content", ["4A7D1ED414474E4033AC29CCB8653D9B", 99]).map(|p| [p.id, p.payload.content_id])"#,
        r#"[["4a7d1ed4-1447-4e40-33ac-29ccb8653d9b", 1]]"#,
    )],
};

pub(super) static DELETE: Spec = Spec {
    module: "qdrant",
    name: "delete",
    params: &[
        COLLECTION,
        Param::new(
            "ids",
            Kind::Array,
            "point ids: integers or UUIDs in any form Qdrant accepts",
        ),
    ],
    options: &[MAX_DELETE],
    returns: "Map",
    doc: "Deletes points by id in batches of 1000, waiting for each. More than the deletion \
          budget (the larger of delete.max_count and delete.max_percent of the collection) \
          changes nothing and fails with kind over_budget unless max_delete is at least the \
          count; --yes never lifts it. Above delete.snapshot_above points a snapshot is taken \
          first; the deleted ids go to a 0600 file in delete.ids_dir; the audit names both. \
          Asks for confirmation (--yes answers it); with --dry-run nothing changes. Returns \
          dry_run, collection, deleted (the ids that existed), snapshot, ids_file.",
    examples: &[Example::new(
        r#"let d = qdrant::delete("youtube_content", [7, 8]); [d.deleted, qdrant::count("youtube_content")]"#,
        "[1, 3]",
    )],
};

pub(super) static DELETE_BY_FILTER: Spec = Spec {
    module: "qdrant",
    name: "delete_by_filter",
    params: &[COLLECTION],
    options: &[
        Opt::new(
            "content_id",
            Kind::Int,
            Default::None,
            "delete the points whose payload content_id is this (required)",
        ),
        MAX_DELETE,
    ],
    returns: "Map",
    doc: "Deletes the points matching a payload filter: their ids are read, then deleted by id \
          (waiting for it), under the same deletion budget, snapshot and id file as \
          qdrant::delete. Asks for confirmation; with --dry-run nothing changes. Returns \
          dry_run, collection, deleted, snapshot, ids_file.",
    examples: &[Example::new(
        r#"qdrant::delete_by_filter("youtube_content", #{content_id: 1}).deleted"#,
        "2",
    )],
};

pub(super) static RECREATE: Spec = Spec {
    module: "qdrant",
    name: "recreate",
    params: &[COLLECTION],
    options: &[],
    returns: "Map",
    doc: "Deletes a collection and creates it again, empty, with the vector configuration it had \
          (read before deleting); when it does not exist, with qdrant.vector_size and \
          qdrant.distance (1024, Cosine). Asks for confirmation; with --dry-run nothing changes. \
          Returns dry_run, collection, deleted_points, vector_size, distance, config_from.",
    examples: &[Example::new(
        r#"let r = qdrant::recreate("youtube_content"); [r.deleted_points, r.vector_size, r.config_from, qdrant::count("youtube_content")]"#,
        r#"[4, 4, "collection", 0]"#,
    )],
};

pub(super) static SNAPSHOT: Spec = Spec {
    module: "qdrant",
    name: "snapshot",
    params: &[COLLECTION],
    options: &[],
    returns: "Map",
    doc: "Creates a snapshot of a collection: name, size, checksum (sha256), created_at.",
    examples: &[Example::new(
        r#"let s = qdrant::snapshot("youtube_summaries"); [s.size > 0, s.checksum.len()]"#,
        "[true, 64]",
    )],
};

pub(super) static SNAPSHOTS: Spec = Spec {
    module: "qdrant",
    name: "snapshots",
    params: &[COLLECTION],
    options: &[],
    returns: "Array",
    doc: "The snapshots of a collection, by name: name, size, checksum, created_at.",
    examples: &[Example::new(
        r#"qdrant::snapshot("youtube_summaries"); qdrant::snapshots("youtube_summaries").len()"#,
        "1",
    )],
};

pub(super) static DOWNLOAD_SNAPSHOT: Spec = Spec {
    module: "qdrant",
    name: "download_snapshot",
    params: &[
        COLLECTION,
        Param::new("name", Kind::Str, "the snapshot's name"),
        Param::new("path", Kind::Str, "the file to write (mode 0600)"),
    ],
    options: &[],
    returns: "Map",
    doc: "Downloads a snapshot over REST (qdrant.rest_url) to a file written 0600, checking its \
          sha256 against the server's; on a mismatch the file is removed and it fails. Returns \
          path, size, sha256, verified.",
    examples: &[Example::new(
        r#"let s = qdrant::snapshot("youtube_summaries"); let d = qdrant::download_snapshot("youtube_summaries", s.name, "s.snapshot"); [d.size == s.size, d.sha256 == s.checksum, d.verified]"#,
        "[true, true, true]",
    )],
};

pub(super) static CLUSTER: Spec = Spec {
    module: "qdrant",
    name: "cluster",
    params: &[],
    options: &[],
    returns: "Map",
    doc: "Qdrant's distributed mode as the configured peer sees it (REST GET /cluster): enabled \
          (false on a single node, every other field then empty), peer_id (the peer asked), \
          leader, role, term, commit, pending_operations, consensus (working, stopped or \
          stopped_with_err) and consensus_error, peers (id, uri: its p2p URI, rest_url: where \
          opsh reaches it, this, leader) and send_failures (uri, peer_id, count, latest_error, \
          latest_error_at: the peers the asked one fails to send messages to). A peer's REST \
          address is its p2p host on qdrant.rest_url's scheme and port unless qdrant.peers names \
          it.",
    examples: &[Example::new(
        "let c = qdrant::cluster(); [c.enabled, c.peers.len(), c.consensus]",
        "[false, 0, null]",
    )],
};

pub(super) static SHARDS: Spec = Spec {
    module: "qdrant",
    name: "shards",
    params: &[COLLECTION],
    options: &[],
    returns: "Map",
    doc: "Where a collection's shards live (GET /collections/{c}/cluster, asked of every peer at \
          once): collection, shard_count, shards (shard_id; points: the shard's, from an Active \
          replica; replicas: peer_id, state and points as that peer counts them), transfers \
          in progress (shard_id, from, to, sync, method, comment) and unanswered (peer_id, \
          rest_url, error: peers that could not be asked, whose replicas' points are then \
          unknown). Replica states are Qdrant's: Active, Dead, Partial, Initializing, Listener, \
          PartialSnapshot, Recovery, Resharding, ReshardingScaleDown, ActiveRead, \
          ManualRecovery. On a single node: its one peer's shards.",
    examples: &[Example::new(
        r#"let s = qdrant::shards("youtube_content"); s.shards.map(|x| [x.shard_id, x.replicas.map(|r| r.state), x.points])"#,
        r#"[[0, ["Active"], 4]]"#,
    )],
};

pub(super) static CLUSTER_HEALTH: Spec = Spec {
    module: "qdrant",
    name: "cluster_health",
    params: &[],
    options: &[],
    returns: "Array",
    doc: "What is wrong with a distributed Qdrant, critical first; empty on a single node and on \
          a healthy cluster. Each finding: level (critical or warning), check (the report line's \
          name), collection, shard, peer (where it applies, else ()) and text. Critical: a \
          shard with no replica that serves reads (Active, ActiveRead, ReshardingScaleDown: its \
          points cannot be read), a Dead replica, consensus not working. Warning: a replica in \
          any other state but Listener (Partial, Recovery, Initializing… named with collection, \
          shard and peer), a shard transfer in progress, a peer the asked one fails to send \
          messages to or opsh cannot read. qdrant-stats, test-health and check-data report \
          these.",
    examples: &[Example::new("qdrant::cluster_health()", "[]")],
};

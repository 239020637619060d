//! `qdrant::` — the vector store: version, collections and their counts, point ids, get and
//! delete, recreate with the collection's own vector configuration, snapshots.
//!
//! Point ids are compared as Qdrant identifies them ([`PointKey`]): a u64, or a UUID read from
//! any text `Uuid::parse_str` accepts (hyphenated in any case, 32-hex such as an MD5 digest,
//! braced, urn) and always shown hyphenated lowercase.
//!
//! Where things are: [`collections`] (ping, info, names, counts), [`scroll`] (ids and scrolls),
//! [`partition`] (a scroll split into ranges read at once),
//! [`points`] (get by id), [`delete`] (deletes within the deletion budget), [`recreate`],
//! [`snapshots`], [`cluster`] (peers and shards of a distributed Qdrant), [`health`] (what is
//! wrong with one), [`specs`]; this file registers them. The client itself (connection, errors,
//! REST transfers, the id-only codec) is [`crate::ops::clients::qdrant`].

mod cluster;
mod collections;
mod delete;
mod health;
mod partition;
mod points;
mod recreate;
mod scroll;
mod snapshots;
mod specs;

pub use crate::ops::clients::qdrant::PointKey;
pub use cluster::{
    Cluster, Peer, Replica, SendFailure, Shard, Shards, Transfer, Unanswered, cluster, peer_rest,
    shards, shards_in,
};
pub use collections::{
    Info, Ping, Sharding, VectorConfig, collections, count, info, names, ping, sharding,
};
pub use delete::{
    DELETE_BATCH, Deleted, delete, delete_by_filter, delete_filter_raw, delete_keys,
    snapshot_before_delete,
};
pub use health::{Finding, cluster_health, judge};
pub use points::{Point, get, json_of};
pub use recreate::{Recreated, create, creation_of, recreate, recreate_from};
pub use scroll::{IdsPage, ids, ids_page, keys_of, partitions, scroll, scroll_ids};
pub use snapshots::{
    Downloaded, Snapshot, delete_snapshot, download_snapshot, snapshot, snapshots,
};

use crate::ops::budget;
use crate::ops::error::OpError;
use crate::ops::spec::Registrar;
use specs::{
    CLUSTER, CLUSTER_HEALTH, COLLECTIONS, COUNT, DELETE, DELETE_BY_FILTER, DOWNLOAD_SNAPSHOT, GET,
    IDS, IDS_PAGE, INFO, PING, RECREATE, SHARDS, SNAPSHOT, SNAPSHOTS,
};

fn page_size(c: &crate::ops::spec::Call) -> Result<u32, OpError> {
    let n = c.int("page_size")?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| OpError::invalid(format!("option `page_size`: {n} is not positive")))
}

pub fn register(reg: &mut Registrar) {
    reg.add(&PING, |c| c.block(ping(c.target)));
    reg.add(&COLLECTIONS, |c| c.block(collections(c.target)));
    reg.add(&INFO, |c| c.block(info(c.target, &c.str("collection")?)));
    reg.add(&COUNT, |c| {
        c.block(count(c.target, &c.str("collection")?, c.bool("exact")?))
    });
    reg.add(&IDS, |c| {
        let size = page_size(c)?;
        c.block(ids(c.target, &c.str("collection")?, size))
    });
    reg.add(&IDS_PAGE, |c| {
        let size = page_size(c)?;
        let offset = match c.value("offset") {
            Some(v) if !v.is_unit() => Some(keys_of(&[v])?[0]),
            _ => None,
        };
        c.block(ids_page(c.target, &c.str("collection")?, offset, size))
    });
    reg.add(&GET, |c| {
        let keys = keys_of(&c.array("ids")?)?;
        let payload = c.bool("payload")?;
        c.block(get(c.target, &c.str("collection")?, &keys, payload))
    });
    reg.add(&DELETE, |c| {
        let keys = keys_of(&c.array("ids")?)?;
        let max = budget::max_delete(c.opt_int("max_delete")?)?;
        c.block(delete(c.target, &c.str("collection")?, keys, max))
    });
    reg.add(&DELETE_BY_FILTER, |c| {
        let id = c.opt_int("content_id")?.ok_or_else(|| {
            OpError::invalid("option `content_id` is required (the only filter so far)")
        })?;
        let max = budget::max_delete(c.opt_int("max_delete")?)?;
        c.block(delete_by_filter(c.target, &c.str("collection")?, id, max))
    });
    reg.add(&RECREATE, |c| {
        c.block(recreate(c.target, &c.str("collection")?))
    });
    reg.add(&SNAPSHOT, |c| {
        c.block(snapshot(c.target, &c.str("collection")?))
    });
    reg.add(&SNAPSHOTS, |c| {
        c.block(snapshots(c.target, &c.str("collection")?))
    });
    reg.add(&DOWNLOAD_SNAPSHOT, |c| {
        let path = std::path::PathBuf::from(c.str("path")?);
        c.block(download_snapshot(
            c.target,
            &c.str("collection")?,
            &c.str("name")?,
            &path,
        ))
    });
    // Dynamics built here, so that their nested lists keep their fields' order in tables.
    reg.add(&CLUSTER, |c| {
        c.block(async { Ok(cluster(c.target).await?.to_dynamic()) })
    });
    reg.add(&SHARDS, |c| {
        let collection = c.str("collection")?;
        c.block(async { Ok(shards(c.target, &collection).await?.to_dynamic()) })
    });
    reg.add(&CLUSTER_HEALTH, |c| c.block(cluster_health(c.target)));
}

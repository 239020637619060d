//! A test double of the Qdrant server for opsh's tests and benchmarks. It is not Qdrant.
//!
//! No Qdrant server can be installed where opsh is built and tested, so this crate serves what
//! opsh uses of Qdrant 1.x, in memory, and behaves as Qdrant does there:
//!
//! - gRPC, through the server traits that `qdrant-client` generates
//!   (`collections_server`, `points_server`, `snapshots_server`, `qdrant_server`): collections
//!   (create, delete, list, exists, info), points (upsert, get, scroll, count, delete by ids or
//!   filter), snapshots (create, list, delete) and the health check. Every other method answers
//!   `Unimplemented`.
//! - REST: `GET /`, `GET /healthz`, the collection snapshot endpoints (list, create,
//!   download, delete, upload), and `PUT /collections/{c}` (create with `{"vectors": {"size",
//!   "distance"}}`) and `PUT /collections/{c}/points?wait=true` (upsert `{"points": [{"id",
//!   "vector", "payload"}]}`) so a demo loader seeds real Qdrant or the double with curl.
//! - Distributed mode ([`QdrantDouble::start_cluster`]): N peers in one process over one store,
//!   each with its own REST and gRPC ports; `GET /cluster`, `GET /collections/{c}/cluster` and
//!   gRPC `CollectionClusterInfo`; shards and replicas ([`Cluster::set_replica_state`],
//!   [`Cluster::stop_peer`], [`Cluster::start_transfer`]); reads and writes through any peer,
//!   failing as Qdrant's do when a shard has no readable replica; shard snapshots (create, list,
//!   download, delete, upload, recover from an http:// location) and per-peer collection
//!   snapshots. A single node answers `GET /cluster` with `{"status":"disabled"}`.
//! - Optional TLS on both ports ([`Options::tls`]), as Qdrant's `service.enable_tls`.
//! - An optional API key, checked as Qdrant checks it (`api-key` header or `Authorization:
//!   Bearer`; the health check, `/` and `/healthz` need none).
//!
//! Tests start it from sync or async code; it runs on a runtime of its own on a background
//! thread and stops when the [`Running`] handle is dropped:
//!
//! ```no_run
//! let qdrant = qdrant_double::QdrantDouble::start(qdrant_double::Options::default()).unwrap();
//! let grpc = qdrant.grpc_url(); // http://127.0.0.1:<port>, for qdrant-client or opsh
//! let rest = qdrant.rest_url();
//! # let _ = (grpc, rest);
//! qdrant.stop();
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

mod cluster;
mod errors;
mod filter;
mod grpc;
mod ids;
mod rest;
mod snapshots;
mod store;
mod tls;

pub use tls::Tls;

/// What the double says it is, first in its log and in its `--help`.
pub const DISCLAIMER: &str =
    "qdrant-double: a test double of Qdrant for opsh's tests and benchmarks. It is not Qdrant.";

/// The server version the health check and `GET /` report unless told otherwise: the Qdrant
/// release that goes with the qdrant-client this crate is built on, so that client has no
/// compatibility warning to give.
pub const DEFAULT_SERVER_VERSION: &str = "1.20.0";

/// How to start the double.
#[derive(Clone, Debug)]
pub struct Options {
    /// When set, every call but the health check needs this key (`api-key` header).
    pub api_key: Option<String>,
    /// The version the health check and `GET /` report.
    pub server_version: String,
    /// Where snapshots are written; `None`: a temporary directory removed on stop.
    pub snapshots_dir: Option<PathBuf>,
    /// The gRPC port; 0 picks a free one.
    pub grpc_port: u16,
    /// The REST port; 0 picks a free one.
    pub rest_port: u16,
    /// Serve both ports over TLS with this certificate, as Qdrant does with
    /// `service.enable_tls`; `None`: plain.
    pub tls: Option<Tls>,
    /// The address both listen on (Qdrant's `service.host`): 127.0.0.1 unless told otherwise,
    /// e.g. 0.0.0.0 in a container that others reach by its name.
    pub host: IpAddr,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            api_key: None,
            server_version: DEFAULT_SERVER_VERSION.to_string(),
            snapshots_dir: None,
            grpc_port: 0,
            rest_port: 0,
            tls: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

impl Options {
    /// With an API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// With the version the server reports.
    pub fn server_version(mut self, version: impl Into<String>) -> Self {
        self.server_version = version.into();
        self
    }

    /// Serving TLS with this certificate and key (PEM files).
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some(Tls {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// With a snapshot directory of the caller's.
    pub fn snapshots_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.snapshots_dir = Some(dir.into());
        self
    }
}

/// State shared by the gRPC and REST servers of one peer.
pub(crate) struct Shared {
    pub(crate) store: Arc<store::Store>,
    pub(crate) snapshots: snapshots::Snapshots,
    pub(crate) api_key: Option<String>,
    pub(crate) server_version: String,
    /// The peers (one, with distributed mode disabled, for a single node).
    pub(crate) cluster: Arc<cluster::ClusterState>,
    /// This peer's place in `cluster.peers`.
    pub(crate) peer_index: usize,
}

impl Shared {
    /// This peer's id.
    pub(crate) fn peer_id(&self) -> u64 {
        self.cluster.peers[self.peer_index].peer_id
    }

    /// Fails a read as Qdrant does when a shard it needs has no readable replica reachable.
    pub(crate) fn check_read(
        &self,
        name: &str,
        c: &store::Collection,
    ) -> Result<(), tonic::Status> {
        self.cluster.check_read(name, c, self.peer_id())
    }
}

/// The shard the double puts a point in, of `shard_number`: its own deterministic hash (FNV-1a
/// of the id), not Qdrant's hash ring. For the double's own tests; opsh must not depend on it.
///
/// # Panics
/// On a point id without a value or with a UUID that does not parse.
pub fn shard_of(id: &qdrant_client::qdrant::PointId, shard_number: u32) -> u32 {
    let key = ids::PointKey::from_grpc(id).expect("a valid point id");
    cluster::shard_of(&key, shard_number)
}

/// Starts doubles.
pub struct QdrantDouble;

impl QdrantDouble {
    /// Binds the gRPC and REST ports on `options.host` and serves them from a background thread
    /// with a runtime of its own, so it works from a plain `#[test]` as well as from async code.
    /// The ports are bound when this returns, so clients may connect at once.
    pub fn start(options: Options) -> io::Result<Running> {
        let grpc = bind(options.host, options.grpc_port, "gRPC")?;
        let rest = bind(options.host, options.rest_port, "REST")?;
        let (tempdir, snapshots_dir) = snapshots_dir(&options)?;
        let cluster = Arc::new(cluster::ClusterState::single(peer_id()));
        let mut running = serve(
            &options,
            Arc::new(store::Store::default()),
            cluster,
            0,
            snapshots_dir,
            grpc,
            rest,
        )?;
        running._tempdir = tempdir;
        Ok(running)
    }

    /// Starts `peers` peers (>= 1) of one cluster in this process, sharing one store, each
    /// serving REST and gRPC on its own ports (`options`' ports + the peer's index when given,
    /// free ones when 0) and reserving a p2p port it shows in `GET /cluster` but does not serve.
    /// Options are shared (api_key, tls, server_version, host); the snapshots directory gets
    /// one subdirectory per peer (`peer1`, `peer2`, …). `peers()[0]` is the raft leader.
    pub fn start_cluster(options: Options, peers: usize) -> io::Result<Cluster> {
        if peers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "qdrant-double: a cluster needs at least one peer",
            ));
        }
        let offset = |port: u16, i: usize| if port == 0 { 0 } else { port + i as u16 };
        let mut listeners = Vec::with_capacity(peers);
        let mut known = Vec::with_capacity(peers);
        let mut ids = std::collections::HashSet::new();
        for i in 0..peers {
            let grpc = bind(options.host, offset(options.grpc_port, i), "gRPC")?;
            let rest = bind(options.host, offset(options.rest_port, i), "REST")?;
            let p2p = bind(options.host, 0, "p2p")?;
            let p2p_addr = p2p.local_addr()?;
            let mut id = peer_id();
            while !ids.insert(id) {
                id = peer_id();
            }
            known.push(cluster::Peer::new(id, p2p_addr.to_string()));
            listeners.push((grpc, rest, p2p));
        }
        let state = Arc::new(cluster::ClusterState::new(true, known));
        let (tempdir, base) = snapshots_dir(&options)?;
        let store = Arc::new(store::Store::default());
        let mut handles = Vec::with_capacity(peers);
        let mut running = Vec::with_capacity(peers);
        let mut p2p_listeners = Vec::with_capacity(peers);
        for (i, (grpc, rest, p2p)) in listeners.into_iter().enumerate() {
            let dir = base.join(format!("peer{}", i + 1));
            std::fs::create_dir_all(&dir)?;
            let peer = serve(&options, store.clone(), state.clone(), i, dir, grpc, rest)?;
            handles.push(PeerHandle {
                peer_id: state.peers[i].peer_id,
                scheme: peer.scheme,
                grpc_addr: peer.grpc_addr,
                rest_addr: peer.rest_addr,
                p2p_addr: p2p.local_addr()?,
                snapshots_dir: peer.snapshots_dir.clone(),
            });
            running.push(Some(peer));
            p2p_listeners.push(Some(p2p));
        }
        Ok(Cluster {
            state,
            store,
            peers: handles,
            running: std::sync::Mutex::new(running),
            p2p: std::sync::Mutex::new(p2p_listeners),
            _tempdir: tempdir,
        })
    }
}

fn snapshots_dir(options: &Options) -> io::Result<(Option<tempfile::TempDir>, PathBuf)> {
    match &options.snapshots_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Ok((None, dir.clone()))
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("qdrant-double-snapshots-")
                .tempdir()?;
            let path = dir.path().to_path_buf();
            Ok((Some(dir), path))
        }
    }
}

/// Serves one peer on bound listeners from a thread with a runtime of its own.
fn serve(
    options: &Options,
    store: Arc<store::Store>,
    cluster: Arc<cluster::ClusterState>,
    peer_index: usize,
    snapshots_dir: PathBuf,
    grpc: TcpListener,
    rest: TcpListener,
) -> io::Result<Running> {
    let grpc_addr = grpc.local_addr()?;
    let rest_addr = rest.local_addr()?;
    let peer_id = cluster.peers[peer_index].peer_id;
    let shared = Arc::new(Shared {
        store,
        snapshots: snapshots::Snapshots::new(snapshots_dir.clone(), peer_id, cluster.clone()),
        api_key: options.api_key.clone().filter(|k| !k.is_empty()),
        server_version: options.server_version.clone(),
        cluster,
        peer_index,
    });

    let tls = options.tls.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("qdrant-double")
        .enable_all()
        .build()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    let thread = std::thread::Builder::new()
        .name("qdrant-double".into())
        .spawn(move || {
            let started = runtime.block_on(async {
                let grpc = tokio::net::TcpListener::from_std(grpc)?;
                let rest = tokio::net::TcpListener::from_std(rest)?;
                let incoming =
                    tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
                let grpc_tls = tls.as_ref().map(Tls::grpc).transpose()?;
                let rest_tls = tls.as_ref().map(Tls::rest).transpose()?;
                let router = grpc::Service::new(shared.clone()).router(grpc_tls)?;
                tokio::spawn(async move {
                    if let Err(e) = router.serve_with_incoming(incoming).await {
                        eprintln!("qdrant-double: gRPC server stopped: {e}");
                    }
                });
                let app = rest::router(shared);
                tokio::spawn(async move {
                    let served = match rest_tls {
                        Some(acceptor) => {
                            let listener = tls::TlsListener {
                                tcp: rest,
                                acceptor,
                            };
                            axum::serve(listener, app).await
                        }
                        None => axum::serve(rest, app).await,
                    };
                    if let Err(e) = served {
                        eprintln!("qdrant-double: REST server stopped: {e}");
                    }
                });
                io::Result::Ok(())
            });
            let failed = started.is_err();
            let _ = ready_tx.send(started);
            if !failed {
                // Serve until stopped (or until the handle is gone).
                let _ = runtime.block_on(stop_rx);
            }
            // Dropping the runtime closes the listeners and every connection.
            runtime.shutdown_timeout(Duration::from_secs(2));
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(io::Error::other("qdrant-double: the server thread died"));
        }
    }
    Ok(Running {
        scheme,
        grpc_addr,
        rest_addr,
        snapshots_dir,
        stop: Some(stop_tx),
        thread: Some(thread),
        _tempdir: None,
    })
}

fn bind(host: IpAddr, port: u16, what: &str) -> io::Result<TcpListener> {
    let addr = SocketAddr::new(host, port);
    let listener = TcpListener::bind(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("qdrant-double: cannot bind the {what} port {addr}: {e}"),
        )
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A random peer id, as each Qdrant peer has (it appears in snapshot names).
fn peer_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    // Qdrant's peer ids are positive and below 2^53 in practice; keep the same shape.
    hasher.finish() >> 11
}

/// A running double; dropping it stops it.
pub struct Running {
    /// "https" when serving TLS.
    scheme: &'static str,
    grpc_addr: SocketAddr,
    rest_addr: SocketAddr,
    snapshots_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _tempdir: Option<tempfile::TempDir>,
}

impl Running {
    /// The gRPC URL (Qdrant's 6334), e.g. `http://127.0.0.1:40123` (`https://` with TLS).
    pub fn grpc_url(&self) -> String {
        format!("{}://{}", self.scheme, self.grpc_addr)
    }

    /// The REST URL (Qdrant's 6333), e.g. `http://127.0.0.1:40124` (`https://` with TLS).
    pub fn rest_url(&self) -> String {
        format!("{}://{}", self.scheme, self.rest_addr)
    }

    /// The gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The REST address.
    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// Where snapshots are written.
    pub fn snapshots_dir(&self) -> &Path {
        &self.snapshots_dir
    }

    /// Stops the servers and waits for them to be gone.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Peers of one cluster in this process (see [`QdrantDouble::start_cluster`]); dropping it
/// stops them all.
pub struct Cluster {
    state: Arc<cluster::ClusterState>,
    store: Arc<store::Store>,
    peers: Vec<PeerHandle>,
    running: std::sync::Mutex<Vec<Option<Running>>>,
    p2p: std::sync::Mutex<Vec<Option<TcpListener>>>,
    _tempdir: Option<tempfile::TempDir>,
}

/// One peer of a [`Cluster`].
#[derive(Clone, Debug)]
pub struct PeerHandle {
    /// Its id, random as Qdrant's (below 2^53, so JSON numbers keep it).
    pub peer_id: u64,
    scheme: &'static str,
    grpc_addr: SocketAddr,
    rest_addr: SocketAddr,
    p2p_addr: SocketAddr,
    snapshots_dir: PathBuf,
}

impl PeerHandle {
    /// Its gRPC URL, e.g. `http://127.0.0.1:40123`.
    pub fn grpc_url(&self) -> String {
        format!("{}://{}", self.scheme, self.grpc_addr)
    }

    /// Its REST URL, e.g. `http://127.0.0.1:40124`.
    pub fn rest_url(&self) -> String {
        format!("{}://{}", self.scheme, self.rest_addr)
    }

    /// Its p2p URI as Qdrant shows it in `GET /cluster`: `http://127.0.0.1:<port>/` (the port
    /// is reserved, not served).
    pub fn p2p_uri(&self) -> String {
        format!("http://{}/", self.p2p_addr)
    }

    /// The gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The REST address.
    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// Where this peer writes its snapshots.
    pub fn snapshots_dir(&self) -> &Path {
        &self.snapshots_dir
    }
}

impl Cluster {
    /// The peers in start order; `peers()[0]` is the leader.
    pub fn peers(&self) -> &[PeerHandle] {
        &self.peers
    }

    /// Sets the state of the replica of `shard_id` on `peer_id` (a Qdrant `ReplicaState` name:
    /// "Active", "Dead", "Partial", "Initializing", "Listener", "PartialSnapshot", "Recovery",
    /// "Resharding", "ReshardingScaleDown", "ActiveRead", "ManualRecovery"), as consensus would.
    ///
    /// # Panics
    /// On a state Qdrant does not have, a collection that does not exist, or a shard without a
    /// replica on that peer: a test's mistake.
    pub fn set_replica_state(&self, collection: &str, shard_id: u32, peer_id: u64, state: &str) {
        let state = qdrant_client::qdrant::ReplicaState::from_str_name(state)
            .unwrap_or_else(|| panic!("qdrant-double: no replica state {state:?} in Qdrant"));
        let c = self
            .store
            .get(collection)
            .unwrap_or_else(|_| panic!("qdrant-double: no collection {collection:?}"));
        let placed = self
            .state
            .replicas_of(collection, &store::read(&c))
            .iter()
            .any(|r| r.shard_id == shard_id && r.peer_id == peer_id);
        assert!(
            placed,
            "qdrant-double: no replica of shard {shard_id} of {collection:?} on peer {peer_id}"
        );
        self.state.set_state(collection, shard_id, peer_id, state);
    }

    /// Closes that peer's ports, as a killed process: the others keep its entry in `/cluster`
    /// and the leader reports message_send_failures for it; reads that need a shard held only
    /// there fail as Qdrant's do, and a write marks its replicas Dead when another Active
    /// replica took it (as Qdrant). Stopping a stopped peer does nothing.
    pub fn stop_peer(&self, index: usize) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(index)
            .and_then(Option::take);
        let Some(running) = running else {
            return;
        };
        self.state.stop(index);
        running.stop();
        if let Some(p2p) = self
            .p2p
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(index)
        {
            p2p.take();
        }
    }

    /// Shows a replication of `shard_id` from peer `from` to peer `to` in progress in
    /// `shard_transfers`, as Qdrant shows one (`"sync":true,"method":"snapshot"`), the receiving
    /// replica in state Recovery. It stays in progress (the double moves no data).
    pub fn start_transfer(&self, collection: &str, shard_id: u32, from: u64, to: u64) {
        self.state.start_transfer(collection, shard_id, from, to);
    }

    /// Stops every peer and waits for them to be gone.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let running: Vec<Running> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for peer in running {
            peer.stop();
        }
    }
}

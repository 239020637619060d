//! `qdrant-double`: the test double of Qdrant as a process of its own, for benchmarks, the
//! demo and trying opsh by hand. It is not Qdrant.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use qdrant_double::{DEFAULT_SERVER_VERSION, DISCLAIMER, Options, QdrantDouble};

/// A test double of Qdrant for opsh's tests, benchmarks and demo. It is NOT Qdrant.
///
/// It keeps everything in memory and serves only what opsh uses of Qdrant 1.x: collections,
/// points (upsert, get, scroll, count, delete), snapshots and the health check over gRPC, and
/// version, health and the snapshot endpoints over REST. Everything else answers
/// "unimplemented". With --peers N it is a cluster in distributed mode (GET /cluster, shards,
/// replicas, shard snapshots). Do not point anything but opsh's tests and demos at it.
#[derive(Parser, Debug)]
#[command(name = "qdrant-double", version, about = DISCLAIMER, long_about)]
struct Args {
    /// The address to listen on (Qdrant's service.host; 0.0.0.0 in a container).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// gRPC port (Qdrant's is 6334; 0 picks a free one).
    #[arg(long, default_value_t = 6334)]
    grpc_port: u16,
    /// REST port (Qdrant's is 6333; 0 picks a free one).
    #[arg(long, default_value_t = 6333)]
    rest_port: u16,
    /// Require this API key (the `api-key` header), as Qdrant's service.api_key does.
    #[arg(long)]
    api_key: Option<String>,
    /// The version to report in the health check and at `GET /`.
    #[arg(long, default_value = DEFAULT_SERVER_VERSION)]
    server_version: String,
    /// Where snapshots are written (default: a temporary directory removed on exit).
    #[arg(long)]
    snapshots_dir: Option<PathBuf>,
    /// Serve both ports over TLS with this certificate (PEM), as Qdrant's tls.cert.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM), as Qdrant's tls.key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Start a cluster of this many peers in distributed mode (one store, one process); peer i
    /// serves on --rest-port + i and --grpc-port + i, and has snapshots in <dir>/peer<i+1>.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    peers: u16,
}

/// Prints a line of the log on stdout; a reader that went away does not stop the server.
fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let args = Args::parse();
    say(DISCLAIMER);
    let options = Options {
        api_key: args.api_key,
        server_version: args.server_version,
        snapshots_dir: args.snapshots_dir,
        grpc_port: args.grpc_port,
        rest_port: args.rest_port,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| qdrant_double::Tls { cert, key }),
        host: args.host,
    };
    let api_key = options.api_key.is_some();
    let version = options.server_version.clone();
    if args.peers > 1 {
        return run_cluster(options, usize::from(args.peers), api_key, &version);
    }
    let running = match QdrantDouble::start(options) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    say(format_args!("gRPC: {}", running.grpc_url()));
    say(format_args!("REST: {}", running.rest_url()));
    say(format_args!(
        "reports Qdrant version {version}; API key {}; snapshots in {}",
        if api_key { "required" } else { "not required" },
        running.snapshots_dir().display()
    ));
    say("running until SIGINT or SIGTERM");
    wait_for_signal();
    say("qdrant-double: stopping");
    running.stop();
    ExitCode::SUCCESS
}

/// `--peers N`: N peers on consecutive ports, each announced with its id and URLs.
fn run_cluster(options: Options, peers: usize, api_key: bool, version: &str) -> ExitCode {
    let last = |port: u16| port.checked_add(peers as u16 - 1);
    let (Some(rest_last), Some(grpc_last)) = (last(options.rest_port), last(options.grpc_port))
    else {
        eprintln!("qdrant-double: with --peers {peers} the ports run past 65535");
        return ExitCode::FAILURE;
    };
    let overlap = options.rest_port != 0
        && options.grpc_port != 0
        && options.rest_port <= grpc_last
        && options.grpc_port <= rest_last;
    if overlap {
        eprintln!(
            "qdrant-double: with --peers {peers} the REST ports {}-{rest_last} and the gRPC ports {}-{grpc_last} overlap; give --grpc-port {} or more",
            options.rest_port,
            options.grpc_port,
            rest_last + 1
        );
        return ExitCode::FAILURE;
    }
    let cluster = match QdrantDouble::start_cluster(options, peers) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for (i, peer) in cluster.peers().iter().enumerate() {
        say(format_args!(
            "peer {}: id {} gRPC {} REST {} p2p {} snapshots in {}{}",
            i + 1,
            peer.peer_id,
            peer.grpc_url(),
            peer.rest_url(),
            peer.p2p_uri(),
            peer.snapshots_dir().display(),
            if i == 0 { " (leader)" } else { "" }
        ));
    }
    say(format_args!(
        "reports Qdrant version {version}; API key {}",
        if api_key { "required" } else { "not required" },
    ));
    say("running until SIGINT or SIGTERM");
    wait_for_signal();
    say("qdrant-double: stopping");
    cluster.stop();
    ExitCode::SUCCESS
}

fn wait_for_signal() {
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a signal runtime");
    signals.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}

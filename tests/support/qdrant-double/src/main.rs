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
/// "unimplemented". Do not point anything but opsh's tests and demos at it.
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
    say("qdrant-double: stopping");
    running.stop();
    ExitCode::SUCCESS
}

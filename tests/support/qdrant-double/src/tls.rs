//! TLS on both ports, as Qdrant serves it with `service.enable_tls` and `tls.cert`/`tls.key`:
//! gRPC through tonic's own TLS, REST through a listener that does the handshake before axum
//! sees the connection. rustls with ring, the provider of opsh's tree.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// The server certificate (chain) and its key, both PEM files (Qdrant's `tls.cert`, `tls.key`).
#[derive(Clone, Debug)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    fn read(&self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("qdrant-double: cannot read {}: {e}", path.display()),
                )
            })
        };
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    /// tonic's TLS for the gRPC port.
    pub(crate) fn grpc(&self) -> io::Result<tonic::transport::ServerTlsConfig> {
        let (cert, key) = self.read()?;
        Ok(tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key)))
    }

    /// The REST port's acceptor (HTTP/1.1).
    pub(crate) fn rest(&self) -> io::Result<TlsAcceptor> {
        let (cert, key) = self.read()?;
        let bad =
            |e: String| io::Error::new(io::ErrorKind::InvalidData, format!("qdrant-double: {e}"));
        let certs = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("the certificate is not PEM: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| bad(format!("the key is not PEM: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A TCP listener whose connections axum gets after their TLS handshake; a failed handshake
/// (a client that does not trust the certificate) ends that connection only.
pub(crate) struct TlsListener {
    pub(crate) tcp: TcpListener,
    pub(crate) acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

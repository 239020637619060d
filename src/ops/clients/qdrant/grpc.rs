//! Qdrant's gRPC services over a tonic channel opsh builds itself, because qdrant-client builds
//! its own with the system's roots only and has no way to take another: an `https://` Qdrant
//! signed by a site's CA (qdrant.ca_file) needs the channel made here. The calls are the
//! generated clients qdrant-client ships (`points_client`, `collections_client`, …) with its
//! own request and reply messages, under the names and argument types of qdrant-client's
//! `Qdrant`, so the domains call them as they would call it, and its errors are the same
//! [`QdrantError`]s.

use std::time::Duration;

use qdrant_client::QdrantError;
use qdrant_client::qdrant as q;
use qdrant_client::qdrant::collections_client::CollectionsClient;
use qdrant_client::qdrant::points_client::PointsClient;
use qdrant_client::qdrant::qdrant_client::QdrantClient;
use qdrant_client::qdrant::snapshots_client::SnapshotsClient;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::ids::ApiKey;
use crate::tls::CaFile;

type QdrantResult<T> = Result<T, QdrantError>;
type Service = InterceptedService<Channel, ApiKey>;

/// Where and how to reach Qdrant's gRPC port: plain for `http://`, TLS for `https://`
/// (trusting the system's roots plus `ca`), with the API key on every call.
#[derive(Clone)]
pub struct Settings {
    pub url: String,
    pub api_key: ApiKey,
    pub ca: Option<CaFile>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Settings {
    /// The endpoint for a connection (not connected yet).
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| format!("qdrant.url: {e}"))?
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(concat!("opsh/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| e.to_string())?;
        if self.url.starts_with("https:") {
            // The roots every backend trusts (crate::tls), as tonic takes them: PEM.
            let roots = Certificate::from_pem(crate::tls::roots_pem(self.ca.as_ref()));
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(roots))
                .map_err(|e| format!("TLS set-up: {e}"))?;
        }
        Ok(endpoint)
    }
}

/// A failure to connect as a status whose source chain keeps the cause (refused, a certificate
/// not trusted), for [`describe`](super::error) to put in words.
pub fn transport_status(e: tonic::transport::Error) -> Status {
    let mut status = Status::unavailable("transport error");
    status.set_source(std::sync::Arc::new(e));
    status
}

/// One gRPC connection to Qdrant, shared by every call of the run (HTTP/2 multiplexes them);
/// cheap to clone.
#[derive(Clone)]
pub struct Grpc {
    service: Service,
}

impl Grpc {
    /// Connects now, so an unreachable server, a wrong port or a refused certificate shows at
    /// connect with its cause.
    pub async fn connect(settings: &Settings) -> QdrantResult<Grpc> {
        let endpoint = settings
            .endpoint()
            .map_err(|e| QdrantError::from(Status::invalid_argument(e)))?;
        let channel = endpoint.connect().await.map_err(transport_status)?;
        Ok(Grpc {
            service: InterceptedService::new(channel, settings.api_key.clone()),
        })
    }

    fn root(&self) -> QdrantClient<Service> {
        QdrantClient::new(self.service.clone()).max_decoding_message_size(usize::MAX)
    }

    fn collections(&self) -> CollectionsClient<Service> {
        CollectionsClient::new(self.service.clone()).max_decoding_message_size(usize::MAX)
    }

    fn points(&self) -> PointsClient<Service> {
        PointsClient::new(self.service.clone()).max_decoding_message_size(usize::MAX)
    }

    fn snapshots(&self) -> SnapshotsClient<Service> {
        SnapshotsClient::new(self.service.clone()).max_decoding_message_size(usize::MAX)
    }

    pub async fn health_check(&self) -> QdrantResult<q::HealthCheckReply> {
        Ok(self
            .root()
            .health_check(q::HealthCheckRequest {})
            .await?
            .into_inner())
    }

    pub async fn list_collections(&self) -> QdrantResult<q::ListCollectionsResponse> {
        Ok(self
            .collections()
            .list(q::ListCollectionsRequest {})
            .await?
            .into_inner())
    }

    pub async fn collection_info(
        &self,
        request: impl Into<q::GetCollectionInfoRequest>,
    ) -> QdrantResult<q::GetCollectionInfoResponse> {
        Ok(self.collections().get(request.into()).await?.into_inner())
    }

    pub async fn create_collection(
        &self,
        request: impl Into<q::CreateCollection>,
    ) -> QdrantResult<q::CollectionOperationResponse> {
        Ok(self
            .collections()
            .create(request.into())
            .await?
            .into_inner())
    }

    pub async fn delete_collection(
        &self,
        request: impl Into<q::DeleteCollection>,
    ) -> QdrantResult<q::CollectionOperationResponse> {
        Ok(self
            .collections()
            .delete(request.into())
            .await?
            .into_inner())
    }

    pub async fn count(
        &self,
        request: impl Into<q::CountPoints>,
    ) -> QdrantResult<q::CountResponse> {
        Ok(self.points().count(request.into()).await?.into_inner())
    }

    pub async fn scroll(
        &self,
        request: impl Into<q::ScrollPoints>,
    ) -> QdrantResult<q::ScrollResponse> {
        Ok(self.points().scroll(request.into()).await?.into_inner())
    }

    pub async fn get_points(
        &self,
        request: impl Into<q::GetPoints>,
    ) -> QdrantResult<q::GetResponse> {
        Ok(self.points().get(request.into()).await?.into_inner())
    }

    pub async fn delete_points(
        &self,
        request: impl Into<q::DeletePoints>,
    ) -> QdrantResult<q::PointsOperationResponse> {
        Ok(self.points().delete(request.into()).await?.into_inner())
    }

    pub async fn create_snapshot(
        &self,
        request: impl Into<q::CreateSnapshotRequest>,
    ) -> QdrantResult<q::CreateSnapshotResponse> {
        Ok(self.snapshots().create(request.into()).await?.into_inner())
    }

    pub async fn list_snapshots(
        &self,
        request: impl Into<q::ListSnapshotsRequest>,
    ) -> QdrantResult<q::ListSnapshotsResponse> {
        Ok(self.snapshots().list(request.into()).await?.into_inner())
    }

    pub async fn delete_snapshot(
        &self,
        request: impl Into<q::DeleteSnapshotRequest>,
    ) -> QdrantResult<q::DeleteSnapshotResponse> {
        Ok(self.snapshots().delete(request.into()).await?.into_inner())
    }
}

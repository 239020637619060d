//! The gRPC services: qdrant-client's generated server traits over the in-memory store.

use std::sync::Arc;
use std::time::Instant;

use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::qdrant_server::{Qdrant, QdrantServer};
use qdrant_client::qdrant::snapshots_server::{Snapshots, SnapshotsServer};
use qdrant_client::qdrant::{self as q};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::Shared;
use crate::cluster::shard_of;
use crate::errors::{check_api_key, unimplemented};
use crate::filter::CompiledFilter;
use crate::ids::PointKey;
use crate::snapshots::SnapshotInfo;
use crate::store::{PayloadSelection, VectorSelection, read, write};

/// The largest gRPC message either way (Qdrant's own client sends big batches).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Qdrant's title in its health check and at `GET /`.
pub const TITLE: &str = "qdrant - vector search engine";

/// The services behind one shared state, ready to be added to a tonic server.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

impl Service {
    pub fn new(shared: Arc<Shared>) -> Self {
        Service { shared }
    }

    /// A tonic router with the four services; all but the health check require the API key when
    /// one is set, as in Qdrant (which lets `HealthCheck` through without it).
    pub fn router(
        self,
        tls: Option<tonic::transport::ServerTlsConfig>,
    ) -> std::io::Result<tonic::transport::server::Router> {
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| std::io::Error::other(format!("qdrant-double: TLS: {e}")))?;
        }
        let router = builder
            .add_service(
                QdrantServer::new(self.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE)
                    .accept_compressed(CompressionEncoding::Gzip),
            )
            .add_service(InterceptedService::new(
                CollectionsServer::new(self.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE)
                    .accept_compressed(CompressionEncoding::Gzip),
                self.auth(),
            ))
            .add_service(InterceptedService::new(
                PointsServer::new(self.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE)
                    .accept_compressed(CompressionEncoding::Gzip),
                self.auth(),
            ))
            .add_service(InterceptedService::new(
                SnapshotsServer::new(self.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE)
                    .accept_compressed(CompressionEncoding::Gzip),
                self.auth(),
            ));
        Ok(router)
    }

    fn auth(&self) -> ApiKeyCheck {
        ApiKeyCheck(self.shared.api_key.clone())
    }
}

/// Qdrant's API key check of gRPC calls.
#[derive(Clone)]
pub struct ApiKeyCheck(Option<String>);

impl tonic::service::Interceptor for ApiKeyCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.0 else {
            return Ok(request);
        };
        let header = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok());
        check_api_key(expected, header("api-key"), header("authorization"))
            .map_err(Status::unauthenticated)?;
        Ok(request)
    }
}

fn seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn done(operation_id: u64, wait: Option<bool>) -> q::UpdateResult {
    let status = if wait == Some(true) {
        q::UpdateStatus::Completed
    } else {
        q::UpdateStatus::Acknowledged
    };
    q::UpdateResult {
        operation_id: Some(operation_id),
        status: status as i32,
    }
}

/// A snapshot description in gRPC form.
pub fn snapshot_description(info: SnapshotInfo) -> q::SnapshotDescription {
    let since = info
        .creation_time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    q::SnapshotDescription {
        name: info.name,
        creation_time: Some(prost_types::Timestamp {
            seconds: since.as_secs() as i64,
            nanos: since.subsec_nanos() as i32,
        }),
        size: info.size as i64,
        checksum: info.checksum,
    }
}

/// Implements a generated trait: the methods given, and every other one as `unimplemented`.
macro_rules! service_impl {
    (
        impl $trait:ident as $service:literal {
            $($body:tt)*
        }
        unimplemented { $($method:ident($req:ident) -> $resp:ident;)* }
    ) => {
        #[tonic::async_trait]
        impl $trait for Service {
            $($body)*
            $(
                async fn $method(
                    &self,
                    _request: Request<q::$req>,
                ) -> Result<Response<q::$resp>, Status> {
                    Err(unimplemented(concat!($service, "/", stringify!($method))))
                }
            )*
        }
    };
}

service_impl! {
    impl Qdrant as "Qdrant" {
        async fn health_check(
            &self,
            _request: Request<q::HealthCheckRequest>,
        ) -> Result<Response<q::HealthCheckReply>, Status> {
            Ok(Response::new(q::HealthCheckReply {
                title: TITLE.to_string(),
                version: self.shared.server_version.clone(),
                commit: None,
            }))
        }
    }
    unimplemented {}
}

service_impl! {
    impl Collections as "Collections" {
        async fn get(
            &self,
            request: Request<q::GetCollectionInfoRequest>,
        ) -> Result<Response<q::GetCollectionInfoResponse>, Status> {
            let start = Instant::now();
            let collection = self.shared.store.get(&request.get_ref().collection_name)?;
            let info = read(&collection).info();
            Ok(Response::new(q::GetCollectionInfoResponse {
                result: Some(info),
                time: seconds(start),
            }))
        }

        async fn list(
            &self,
            _request: Request<q::ListCollectionsRequest>,
        ) -> Result<Response<q::ListCollectionsResponse>, Status> {
            let start = Instant::now();
            let collections = self
                .shared
                .store
                .names()
                .into_iter()
                .map(|name| q::CollectionDescription { name })
                .collect();
            Ok(Response::new(q::ListCollectionsResponse {
                collections,
                time: seconds(start),
            }))
        }

        async fn create(
            &self,
            request: Request<q::CreateCollection>,
        ) -> Result<Response<q::CollectionOperationResponse>, Status> {
            let start = Instant::now();
            let mut request = request.into_inner();
            self.shared.cluster.fill_defaults(&mut request);
            self.shared.store.create(&request)?;
            self.shared.cluster.forget(&request.collection_name);
            Ok(Response::new(q::CollectionOperationResponse {
                result: true,
                time: seconds(start),
            }))
        }

        async fn delete(
            &self,
            request: Request<q::DeleteCollection>,
        ) -> Result<Response<q::CollectionOperationResponse>, Status> {
            let start = Instant::now();
            let result = self.shared.store.delete(&request.get_ref().collection_name);
            self.shared.cluster.forget(&request.get_ref().collection_name);
            Ok(Response::new(q::CollectionOperationResponse {
                result,
                time: seconds(start),
            }))
        }

        async fn collection_exists(
            &self,
            request: Request<q::CollectionExistsRequest>,
        ) -> Result<Response<q::CollectionExistsResponse>, Status> {
            let start = Instant::now();
            let exists = self.shared.store.exists(&request.get_ref().collection_name);
            Ok(Response::new(q::CollectionExistsResponse {
                result: Some(q::CollectionExists { exists }),
                time: seconds(start),
            }))
        }

        /// Qdrant's `CollectionClusterInfo` (lib/api/src/grpc/proto/collections.proto): the
        /// same as `GET /collections/{c}/cluster`; a single node answers its one peer with
        /// every shard local and Active (both seen on 1.18.3 with qdrant-client).
        async fn collection_cluster_info(
            &self,
            request: Request<q::CollectionClusterInfoRequest>,
        ) -> Result<Response<q::CollectionClusterInfoResponse>, Status> {
            let name = &request.get_ref().collection_name;
            let collection = self.shared.store.get(name)?;
            // `time` stays 0: 1.18.3 answers this call with `time: 0.0`.
            let info = self.shared.cluster.collection_info(
                name,
                &read(&collection),
                self.shared.peer_id(),
            );
            Ok(Response::new(info))
        }
    }
    unimplemented {
        update(UpdateCollection) -> CollectionOperationResponse;
        update_aliases(ChangeAliases) -> CollectionOperationResponse;
        list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
        list_aliases(ListAliasesRequest) -> ListAliasesResponse;
        update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
        create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
        delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
        list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
    }
}

service_impl! {
    impl Points as "Points" {
        async fn upsert(
            &self,
            request: Request<q::UpsertPoints>,
        ) -> Result<Response<q::PointsOperationResponse>, Status> {
            let start = Instant::now();
            let request = request.into_inner();
            if request.update_filter.is_some() {
                return Err(unimplemented("Points/upsert with update_filter"));
            }
            if request.update_mode.is_some_and(|m| m != q::UpdateMode::Upsert as i32) {
                return Err(unimplemented("Points/upsert with an insert-only or update-only mode"));
            }
            let collection = self.shared.store.get(&request.collection_name)?;
            let points = read(&collection).prepare_points(request.points)?;
            let operation_id = {
                let mut c = write(&collection);
                let shards = points.iter().map(|(id, _)| shard_of(id, c.shard_number)).collect();
                let (failed, error) = self.shared.cluster.check_write(&request.collection_name, &c, &shards, self.shared.peer_id());
                let shard_number = c.shard_number;
                c.points.extend(
                    points
                        .into_iter()
                        .filter(|(id, _)| !failed.contains(&shard_of(id, shard_number))),
                );
                let id = c.next_operation();
                if let Some(error) = error {
                    return Err(error);
                }
                id
            };
            Ok(Response::new(q::PointsOperationResponse {
                result: Some(done(operation_id, request.wait)),
                time: seconds(start),
                usage: None,
            }))
        }

        async fn delete(
            &self,
            request: Request<q::DeletePoints>,
        ) -> Result<Response<q::PointsOperationResponse>, Status> {
            let start = Instant::now();
            let request = request.into_inner();
            let collection = self.shared.store.get(&request.collection_name)?;
            let selector = request
                .points
                .and_then(|p| p.points_selector_one_of)
                .ok_or_else(|| Status::invalid_argument("Points selector is expected"))?;
            let operation_id = match selector {
                PointsSelectorOneOf::Points(list) => {
                    // Missing ids are not an error, as in Qdrant.
                    let ids = list
                        .ids
                        .iter()
                        .map(PointKey::from_grpc)
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut c = write(&collection);
                    let shards = ids.iter().map(|id| shard_of(id, c.shard_number)).collect();
                    let (failed, error) = self.shared.cluster.check_write(&request.collection_name, &c, &shards, self.shared.peer_id());
                    for id in &ids {
                        if !failed.contains(&shard_of(id, c.shard_number)) {
                            c.points.remove(id);
                        }
                    }
                    let operation = c.next_operation();
                    if let Some(error) = error {
                        return Err(error);
                    }
                    operation
                }
                PointsSelectorOneOf::Filter(filter) => {
                    let filter = CompiledFilter::compile(&filter)?;
                    let mut c = write(&collection);
                    // A filter reaches every shard.
                    let shards = (0..c.shard_number).collect();
                    let (failed, error) = self.shared.cluster.check_write(&request.collection_name, &c, &shards, self.shared.peer_id());
                    for id in c.matching_ids(&filter) {
                        if !failed.contains(&shard_of(&id, c.shard_number)) {
                            c.points.remove(&id);
                        }
                    }
                    let operation = c.next_operation();
                    if let Some(error) = error {
                        return Err(error);
                    }
                    operation
                }
            };
            Ok(Response::new(q::PointsOperationResponse {
                result: Some(done(operation_id, request.wait)),
                time: seconds(start),
                usage: None,
            }))
        }

        async fn get(
            &self,
            request: Request<q::GetPoints>,
        ) -> Result<Response<q::GetResponse>, Status> {
            let start = Instant::now();
            let request = request.into_inner();
            let collection = self.shared.store.get(&request.collection_name)?;
            let ids = request
                .ids
                .iter()
                .map(PointKey::from_grpc)
                .collect::<Result<Vec<_>, _>>()?;
            // Retrieval by ids returns no payload unless asked (unlike scroll).
            let payload = PayloadSelection::from_grpc(request.with_payload.as_ref(), false);
            let vectors = VectorSelection::from_grpc(request.with_vectors.as_ref());
            let c = read(&collection);
            // Retrieval asks every shard (Qdrant does not route reads by id).
            self.shared.check_read(&request.collection_name, &c)?;
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            let result = ids
                .into_iter()
                .filter(|id| seen.insert(*id))
                .filter_map(|id| {
                    c.points
                        .get(&id)
                        .map(|p| c.retrieved(id, p, &payload, &vectors))
                })
                .collect();
            Ok(Response::new(q::GetResponse {
                result,
                time: seconds(start),
                usage: None,
            }))
        }

        async fn scroll(
            &self,
            request: Request<q::ScrollPoints>,
        ) -> Result<Response<q::ScrollResponse>, Status> {
            let start = Instant::now();
            let request = request.into_inner();
            if request.order_by.is_some() {
                return Err(unimplemented("Points/scroll with order_by"));
            }
            let collection = self.shared.store.get(&request.collection_name)?;
            let limit = request.limit.unwrap_or(10) as usize;
            if limit == 0 {
                return Err(Status::invalid_argument(
                    "Validation error in body: [limit: value 0 invalid, must be 1 or larger]",
                ));
            }
            let offset = request.offset.as_ref().map(PointKey::from_grpc).transpose()?;
            let filter = request
                .filter
                .as_ref()
                .map(CompiledFilter::compile)
                .transpose()?;
            let payload = PayloadSelection::from_grpc(request.with_payload.as_ref(), true);
            let vectors = VectorSelection::from_grpc(request.with_vectors.as_ref());
            let c = read(&collection);
            self.shared.check_read(&request.collection_name, &c)?;
            let range = match offset {
                Some(offset) => c.points.range(offset..),
                None => c.points.range(..),
            };
            let mut page = range.filter(|(id, p)| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.matches(id, p.payload.as_deref()))
            });
            let result = page
                .by_ref()
                .take(limit)
                .map(|(id, p)| c.retrieved(*id, p, &payload, &vectors))
                .collect();
            // The id after the page, if any: where the next page starts (inclusive).
            let next_page_offset = page.next().map(|(id, _)| id.to_grpc());
            Ok(Response::new(q::ScrollResponse {
                next_page_offset,
                result,
                time: seconds(start),
                usage: None,
            }))
        }

        async fn count(
            &self,
            request: Request<q::CountPoints>,
        ) -> Result<Response<q::CountResponse>, Status> {
            let start = Instant::now();
            let request = request.into_inner();
            let collection = self.shared.store.get(&request.collection_name)?;
            let filter = request
                .filter
                .as_ref()
                .map(CompiledFilter::compile)
                .transpose()?;
            let c = read(&collection);
            self.shared.check_read(&request.collection_name, &c)?;
            // Always exact: an approximate count of Qdrant's is exact without a filter anyway.
            let count = match filter {
                None => c.points.len(),
                Some(f) => c
                    .points
                    .iter()
                    .filter(|(id, p)| f.matches(id, p.payload.as_deref()))
                    .count(),
            } as u64;
            Ok(Response::new(q::CountResponse {
                result: Some(q::CountResult { count }),
                time: seconds(start),
                usage: None,
            }))
        }
    }
    unimplemented {
        update_vectors(UpdatePointVectors) -> PointsOperationResponse;
        delete_vectors(DeletePointVectors) -> PointsOperationResponse;
        set_payload(SetPayloadPoints) -> PointsOperationResponse;
        overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
        delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
        clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
        create_field_index(CreateFieldIndexCollection) -> PointsOperationResponse;
        delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
        create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
        delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
        search(SearchPoints) -> SearchResponse;
        search_batch(SearchBatchPoints) -> SearchBatchResponse;
        search_groups(SearchPointGroups) -> SearchGroupsResponse;
        recommend(RecommendPoints) -> RecommendResponse;
        recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
        recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
        discover(DiscoverPoints) -> DiscoverResponse;
        discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
        update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
        query(QueryPoints) -> QueryResponse;
        query_batch(QueryBatchPoints) -> QueryBatchResponse;
        query_groups(QueryPointGroups) -> QueryGroupsResponse;
        facet(FacetCounts) -> FacetResponse;
        search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
        search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
    }
}

service_impl! {
    impl Snapshots as "Snapshots" {
        async fn create(
            &self,
            request: Request<q::CreateSnapshotRequest>,
        ) -> Result<Response<q::CreateSnapshotResponse>, Status> {
            let start = Instant::now();
            let shared = self.shared.clone();
            let name = request.into_inner().collection_name;
            let info = tokio::task::spawn_blocking(move || {
                shared.snapshots.create(&shared.store, &name)
            })
            .await
            .map_err(crate::errors::internal)??;
            Ok(Response::new(q::CreateSnapshotResponse {
                snapshot_description: Some(snapshot_description(info)),
                time: seconds(start),
            }))
        }

        async fn list(
            &self,
            request: Request<q::ListSnapshotsRequest>,
        ) -> Result<Response<q::ListSnapshotsResponse>, Status> {
            let start = Instant::now();
            let list = self
                .shared
                .snapshots
                .list(&self.shared.store, &request.get_ref().collection_name)?;
            Ok(Response::new(q::ListSnapshotsResponse {
                snapshot_descriptions: list.into_iter().map(snapshot_description).collect(),
                time: seconds(start),
            }))
        }

        async fn delete(
            &self,
            request: Request<q::DeleteSnapshotRequest>,
        ) -> Result<Response<q::DeleteSnapshotResponse>, Status> {
            let start = Instant::now();
            let request = request.get_ref();
            self.shared.snapshots.delete(
                &self.shared.store,
                &request.collection_name,
                &request.snapshot_name,
            )?;
            Ok(Response::new(q::DeleteSnapshotResponse {
                time: seconds(start),
            }))
        }
    }
    unimplemented {
        create_full(CreateFullSnapshotRequest) -> CreateSnapshotResponse;
        list_full(ListFullSnapshotsRequest) -> ListSnapshotsResponse;
        delete_full(DeleteFullSnapshotRequest) -> DeleteSnapshotResponse;
    }
}

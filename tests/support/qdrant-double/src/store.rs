//! In-memory collections and points.
//!
//! Each collection keeps its points in a `BTreeMap` keyed by [`PointKey`], whose order is
//! Qdrant's id order, so a scroll page is a range walk: O(log n + page) whatever the offset.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    self as q, CollectionConfig, CollectionInfo, CollectionParams, CreateCollection, Distance,
    HnswConfigDiff, NamedVectorsOutput, OptimizerStatus, OptimizersConfigDiff, PointStruct,
    RetrievedPoint, Value, VectorOutput, VectorParams, VectorsConfig, VectorsOutput, WalConfigDiff,
    WithPayloadSelector, WithVectorsSelector, vector, vector_output, vectors_output,
    with_payload_selector, with_vectors_selector,
};
use tonic::Status;

use crate::errors::{collection_exists, collection_not_found, wrong_input};
use crate::filter::CompiledFilter;
use crate::ids::PointKey;

/// All collections of one server.
#[derive(Default)]
pub struct Store {
    collections: RwLock<BTreeMap<String, Arc<RwLock<Collection>>>>,
}

/// One collection.
pub struct Collection {
    /// The vector configuration as the collection was created with it (and as Qdrant returns it).
    pub vectors_config: VectorsConfig,
    /// Sparse vector configuration, if any.
    pub sparse_vectors_config: Option<q::SparseVectorConfig>,
    /// The points, in Qdrant's id order.
    pub points: BTreeMap<PointKey, StoredPoint>,
    /// When the collection was created.
    pub created_at: SystemTime,
    /// Shards (Qdrant's `shard_number`); points go to shards by [`crate::cluster::shard_of`].
    pub shard_number: u32,
    /// Copies of each shard in distributed mode (`replication_factor`).
    pub replication_factor: u32,
    next_operation_id: u64,
}

/// A point's data; payload and vectors are boxed so an id-only point stays small.
#[derive(Clone, Debug, Default)]
pub struct StoredPoint {
    /// The payload; `None` when empty. Boxed on purpose: 8 bytes a point instead of a
    /// HashMap's 48 when millions of id-only points are held.
    #[allow(clippy::box_collection)]
    pub payload: Option<Box<HashMap<String, Value>>>,
    /// The vectors in the form Qdrant answers them; `None` when the point has none.
    pub vectors: Option<Box<VectorsOutput>>,
}

/// What a read returns of each point.
#[derive(Clone, Debug)]
pub enum PayloadSelection {
    /// No payload.
    None,
    /// The whole payload.
    All,
    /// Only these top-level keys.
    Include(HashSet<String>),
    /// All but these top-level keys.
    Exclude(HashSet<String>),
}

/// Which vectors a read returns.
#[derive(Clone, Debug)]
pub enum VectorSelection {
    /// None.
    None,
    /// All of them.
    All,
    /// Only these named vectors.
    Names(HashSet<String>),
}

impl PayloadSelection {
    /// Reads a request's selector; `default` is what Qdrant does when it is absent (scroll
    /// returns the payload, get by ids does not).
    pub fn from_grpc(selector: Option<&WithPayloadSelector>, default: bool) -> Self {
        let fallback = if default { Self::All } else { Self::None };
        match selector.and_then(|s| s.selector_options.as_ref()) {
            None => fallback,
            Some(with_payload_selector::SelectorOptions::Enable(true)) => Self::All,
            Some(with_payload_selector::SelectorOptions::Enable(false)) => Self::None,
            Some(with_payload_selector::SelectorOptions::Include(i)) => {
                Self::Include(i.fields.iter().cloned().collect())
            }
            Some(with_payload_selector::SelectorOptions::Exclude(e)) => {
                Self::Exclude(e.fields.iter().cloned().collect())
            }
        }
    }
}

impl VectorSelection {
    /// Reads a request's selector; vectors are not returned unless asked for.
    pub fn from_grpc(selector: Option<&WithVectorsSelector>) -> Self {
        match selector.and_then(|s| s.selector_options.as_ref()) {
            None | Some(with_vectors_selector::SelectorOptions::Enable(false)) => Self::None,
            Some(with_vectors_selector::SelectorOptions::Enable(true)) => Self::All,
            Some(with_vectors_selector::SelectorOptions::Include(names)) => {
                Self::Names(names.names.iter().cloned().collect())
            }
        }
    }
}

impl Store {
    /// The collection, or Qdrant's NotFound.
    pub fn get(&self, name: &str) -> Result<Arc<RwLock<Collection>>, Status> {
        read(&self.collections)
            .get(name)
            .cloned()
            .ok_or_else(|| collection_not_found(name))
    }

    /// Collection names in name order.
    pub fn names(&self) -> Vec<String> {
        read(&self.collections).keys().cloned().collect()
    }

    /// Whether a collection exists.
    pub fn exists(&self, name: &str) -> bool {
        read(&self.collections).contains_key(name)
    }

    /// Creates a collection as Qdrant does, refusing an existing name.
    pub fn create(&self, request: &CreateCollection) -> Result<(), Status> {
        let collection = Collection::new(request)?;
        let mut collections = write(&self.collections);
        if collections.contains_key(&request.collection_name) {
            return Err(collection_exists(&request.collection_name));
        }
        collections.insert(
            request.collection_name.clone(),
            Arc::new(RwLock::new(collection)),
        );
        Ok(())
    }

    /// Puts a collection in place of any of the same name (snapshot recovery).
    pub fn replace(&self, name: &str, collection: Collection) {
        write(&self.collections).insert(name.to_string(), Arc::new(RwLock::new(collection)));
    }

    /// Deletes a collection; false when there was none (Qdrant answers `result: false`).
    pub fn delete(&self, name: &str) -> bool {
        write(&self.collections).remove(name).is_some()
    }
}

/// Refuses names that Qdrant refuses, and any that could leave the snapshot directory.
pub fn validate_collection_name(name: &str) -> Result<(), Status> {
    const INVALID: [char; 10] = ['<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0'];
    if name.is_empty() || name.len() > 255 {
        return Err(Status::invalid_argument(format!(
            "Validation error in body: [collection_name: length must be between 1 and 255, got `{name}`]"
        )));
    }
    if name.contains(INVALID) || name.chars().any(char::is_control) || name == "." || name == ".." {
        return Err(wrong_input(format!(
            "Collection name `{name}` contains invalid characters"
        )));
    }
    Ok(())
}

impl Collection {
    /// A new, empty collection from a create request, validated as Qdrant validates it.
    pub fn new(request: &CreateCollection) -> Result<Self, Status> {
        validate_collection_name(&request.collection_name)?;
        let vectors_config = match &request.vectors_config {
            Some(VectorsConfig {
                config: Some(config),
            }) => {
                match config {
                    Config::Params(params) => validate_params("", params)?,
                    Config::ParamsMap(map) => {
                        for (name, params) in &map.map {
                            validate_params(name, params)?;
                        }
                    }
                }
                VectorsConfig {
                    config: Some(config.clone()),
                }
            }
            // No dense vectors at all: Qdrant keeps an empty map of named vectors.
            _ => VectorsConfig {
                config: Some(Config::ParamsMap(q::VectorParamsMap::default())),
            },
        };
        Ok(Collection {
            vectors_config,
            sparse_vectors_config: request.sparse_vectors_config.clone(),
            points: BTreeMap::new(),
            created_at: SystemTime::now(),
            shard_number: request.shard_number.unwrap_or(1).max(1),
            replication_factor: request.replication_factor.unwrap_or(1).max(1),
            next_operation_id: 0,
        })
    }

    /// The create request that makes this collection again (snapshots).
    pub fn create_request(&self, name: &str) -> CreateCollection {
        CreateCollection {
            collection_name: name.to_string(),
            vectors_config: Some(self.vectors_config.clone()),
            sparse_vectors_config: self.sparse_vectors_config.clone(),
            shard_number: Some(self.shard_number),
            replication_factor: Some(self.replication_factor),
            ..Default::default()
        }
    }

    /// The next operation id of an update.
    pub fn next_operation(&mut self) -> u64 {
        let id = self.next_operation_id;
        self.next_operation_id += 1;
        id
    }

    /// Collection info as Qdrant's defaults give it, with the real points count.
    pub fn info(&self) -> CollectionInfo {
        #[allow(deprecated)]
        let params = CollectionParams {
            shard_number: self.shard_number,
            on_disk_payload: true,
            vectors_config: Some(self.vectors_config.clone()),
            replication_factor: Some(self.replication_factor),
            write_consistency_factor: Some(1),
            read_fan_out_factor: None,
            sharding_method: None,
            sparse_vectors_config: self.sparse_vectors_config.clone(),
            ..Default::default()
        };
        #[allow(deprecated)]
        let hnsw = HnswConfigDiff {
            m: Some(16),
            ef_construct: Some(100),
            full_scan_threshold: Some(10_000),
            max_indexing_threads: Some(0),
            on_disk: Some(false),
            payload_m: None,
            ..Default::default()
        };
        let optimizers = OptimizersConfigDiff {
            deleted_threshold: Some(0.2),
            vacuum_min_vector_number: Some(1000),
            default_segment_number: Some(0),
            max_segment_size: None,
            memmap_threshold: None,
            indexing_threshold: Some(10_000),
            flush_interval_sec: Some(5),
            ..Default::default()
        };
        let secs = self
            .created_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        CollectionInfo {
            status: q::CollectionStatus::Green as i32,
            optimizer_status: Some(OptimizerStatus {
                ok: true,
                error: String::new(),
            }),
            segments_count: 2,
            config: Some(CollectionConfig {
                params: Some(params),
                hnsw_config: Some(hnsw),
                optimizer_config: Some(optimizers),
                wal_config: Some(WalConfigDiff {
                    wal_capacity_mb: Some(32),
                    wal_segments_ahead: Some(0),
                    ..Default::default()
                }),
                quantization_config: None,
                strict_mode_config: None,
                metadata: HashMap::new(),
            }),
            payload_schema: HashMap::new(),
            points_count: Some(self.points.len() as u64),
            indexed_vectors_count: Some(0),
            warnings: Vec::new(),
            update_queue: None,
            created_at: Some(prost_types::Timestamp {
                seconds: secs.as_secs() as i64,
                nanos: secs.subsec_nanos() as i32,
            }),
        }
    }

    /// Checks and converts points for an upsert; nothing is stored unless all are valid.
    pub fn prepare_points(
        &self,
        points: Vec<PointStruct>,
    ) -> Result<Vec<(PointKey, StoredPoint)>, Status> {
        points
            .into_iter()
            .map(|point| {
                let id = point
                    .id
                    .as_ref()
                    .ok_or_else(|| Status::invalid_argument("Empty ID is not allowed"))
                    .and_then(PointKey::from_grpc)?;
                let vectors = self.convert_vectors(point.vectors)?;
                let payload = (!point.payload.is_empty()).then(|| Box::new(point.payload));
                Ok((id, StoredPoint { payload, vectors }))
            })
            .collect()
    }

    fn convert_vectors(
        &self,
        vectors: Option<q::Vectors>,
    ) -> Result<Option<Box<VectorsOutput>>, Status> {
        use q::vectors::VectorsOptions;
        let named: Vec<(String, q::Vector)> = match vectors.and_then(|v| v.vectors_options) {
            None => Vec::new(),
            Some(VectorsOptions::Vector(v)) => vec![(String::new(), v)],
            Some(VectorsOptions::Vectors(map)) => map.vectors.into_iter().collect(),
        };
        match &self.vectors_config.config {
            Some(Config::Params(params)) => {
                let [(name, v)]: [(String, q::Vector); 1] =
                    named.try_into().map_err(|given: Vec<_>| {
                        if given.is_empty() {
                            wrong_input(format!(
                                "Vector dimension error: expected dim: {}, got 0",
                                params.size
                            ))
                        } else {
                            wrong_input(
                                "Wrong number of vectors: this collection has one unnamed vector",
                            )
                        }
                    })?;
                if !name.is_empty() {
                    return Err(wrong_input(format!(
                        "Not existing vector name error: {name}"
                    )));
                }
                let out = convert_dense(params, v)?;
                Ok(Some(Box::new(VectorsOutput {
                    vectors_options: Some(vectors_output::VectorsOptions::Vector(out)),
                })))
            }
            Some(Config::ParamsMap(map)) => {
                if named.is_empty() {
                    return Ok(None);
                }
                let mut out = HashMap::with_capacity(named.len());
                for (name, v) in named {
                    let converted = if let Some(params) = map.map.get(&name) {
                        convert_dense(params, v)?
                    } else if self
                        .sparse_vectors_config
                        .as_ref()
                        .is_some_and(|s| s.map.contains_key(&name))
                    {
                        convert_sparse(v)?
                    } else {
                        return Err(wrong_input(format!(
                            "Not existing vector name error: {name}"
                        )));
                    };
                    out.insert(name, converted);
                }
                Ok(Some(Box::new(VectorsOutput {
                    vectors_options: Some(vectors_output::VectorsOptions::Vectors(
                        NamedVectorsOutput { vectors: out },
                    )),
                })))
            }
            None => Ok(None),
        }
    }

    /// Builds the answer for one point with the selected payload and vectors.
    pub fn retrieved(
        &self,
        id: PointKey,
        point: &StoredPoint,
        payload: &PayloadSelection,
        vectors: &VectorSelection,
    ) -> RetrievedPoint {
        let payload = match (payload, &point.payload) {
            (PayloadSelection::None, _) | (_, None) => HashMap::new(),
            (PayloadSelection::All, Some(p)) => (**p).clone(),
            (PayloadSelection::Include(keys), Some(p)) => p
                .iter()
                .filter(|(k, _)| keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            (PayloadSelection::Exclude(keys), Some(p)) => p
                .iter()
                .filter(|(k, _)| !keys.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let vectors = match (vectors, &point.vectors) {
            (VectorSelection::None, _) | (_, None) => None,
            (VectorSelection::All, Some(v)) => Some((**v).clone()),
            (VectorSelection::Names(names), Some(v)) => match &v.vectors_options {
                Some(vectors_output::VectorsOptions::Vectors(named)) => Some(VectorsOutput {
                    vectors_options: Some(vectors_output::VectorsOptions::Vectors(
                        NamedVectorsOutput {
                            vectors: named
                                .vectors
                                .iter()
                                .filter(|(k, _)| names.contains(*k))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        },
                    )),
                }),
                // The unnamed vector is the one named "".
                _ if names.contains("") => Some((**v).clone()),
                _ => None,
            },
        };
        RetrievedPoint {
            id: Some(id.to_grpc()),
            payload,
            vectors,
            shard_key: None,
            order_value: None,
        }
    }

    /// Ids of the points that pass a filter, in id order.
    pub fn matching_ids(&self, filter: &CompiledFilter) -> Vec<PointKey> {
        self.points
            .iter()
            .filter(|(id, p)| filter.matches(id, p.payload.as_deref()))
            .map(|(id, _)| *id)
            .collect()
    }
}

fn validate_params(name: &str, params: &VectorParams) -> Result<(), Status> {
    if params.size == 0 || params.size > 65_536 {
        return Err(Status::invalid_argument(format!(
            "Validation error in body: [vectors_config{}.size: value {} invalid, must be from 1 to 65536]",
            if name.is_empty() {
                String::new()
            } else {
                format!(".{name}")
            },
            params.size
        )));
    }
    match Distance::try_from(params.distance) {
        Ok(Distance::UnknownDistance) | Err(_) => Err(Status::invalid_argument(format!(
            "Malformed distance parameter: {}",
            params.distance
        ))),
        Ok(_) => Ok(()),
    }
}

/// The data of a dense vector, from the current `vector` field or the deprecated `data` one.
#[allow(deprecated)]
fn dense_data(v: q::Vector) -> Result<Vec<f32>, Status> {
    match v.vector {
        Some(vector::Vector::Dense(d)) => Ok(d.data),
        Some(vector::Vector::Sparse(_)) => Err(wrong_input("Expected a dense vector, got sparse")),
        Some(vector::Vector::MultiDense(_)) => Err(wrong_input(
            "Expected a dense vector, got multi-dense (multivectors are not in the double)",
        )),
        Some(_) => Err(Status::invalid_argument(
            "Inference (documents, images, objects) is not available: qdrant-double has no models",
        )),
        None if v.indices.is_some() => Err(wrong_input("Expected a dense vector, got sparse")),
        None => Ok(v.data),
    }
}

fn convert_dense(params: &VectorParams, v: q::Vector) -> Result<VectorOutput, Status> {
    let mut data = dense_data(v)?;
    if data.len() as u64 != params.size {
        return Err(wrong_input(format!(
            "Vector dimension error: expected dim: {}, got {}",
            params.size,
            data.len()
        )));
    }
    // Qdrant stores cosine vectors normalised and returns them so.
    if params.distance == Distance::Cosine as i32 {
        let norm = data.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > f32::EPSILON {
            data.iter_mut().for_each(|x| *x /= norm);
        }
    }
    Ok(dense_output(data))
}

#[allow(deprecated)]
fn dense_output(data: Vec<f32>) -> VectorOutput {
    VectorOutput {
        data: Vec::new(),
        indices: None,
        vectors_count: None,
        vector: Some(vector_output::Vector::Dense(q::DenseVector { data })),
    }
}

#[allow(deprecated)]
fn convert_sparse(v: q::Vector) -> Result<VectorOutput, Status> {
    let sparse = match v.vector {
        Some(vector::Vector::Sparse(s)) => s,
        None if v.indices.is_some() => q::SparseVector {
            values: v.data,
            indices: v.indices.map(|i| i.data).unwrap_or_default(),
        },
        _ => return Err(wrong_input("Expected a sparse vector")),
    };
    if sparse.values.len() != sparse.indices.len() {
        return Err(wrong_input(
            "Sparse vector indices and values must have the same length",
        ));
    }
    Ok(VectorOutput {
        data: Vec::new(),
        indices: None,
        vectors_count: None,
        vector: Some(vector_output::Vector::Sparse(sparse)),
    })
}

/// Reads a lock, going on past a panic elsewhere (the data is still consistent: every write
/// is a single map operation).
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Writes a lock, as [`read`].
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

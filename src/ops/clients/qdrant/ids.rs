//! Id scrolls: Qdrant's `Points/Scroll` over a gRPC connection of its own, read with a codec
//! that takes from each page only the point ids (straight from the wire into [`PointKey`]s)
//! and the next page's offset, and skips whatever else a point carries unread.
//!
//! Why not qdrant-client's scroll: it decodes every point into a `RetrievedPoint` (a String
//! for the id, a HashMap for the payload), which costs the integrity check more CPU than the
//! whole rest of its comparison; on a small machine that CPU is taken from Qdrant and
//! PostgreSQL, which are streaming at the same time.
//!
//! The request is qdrant-client's own `ScrollPoints` message, so both speak the same
//! protocol; the errors are tonic's statuses, read by the same [`describe`](super::error).

use prost::Message;
use prost::bytes::Buf;
use qdrant_client::qdrant::ScrollPoints;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::PointKey;

/// A connection for id scrolls; cheap to clone, connected on first use.
#[derive(Clone)]
pub struct IdScroll {
    grpc: tonic::client::Grpc<InterceptedService<Channel, ApiKey>>,
}

/// One scroll page as the integrity check reads it.
#[derive(Debug, Default, PartialEq)]
pub struct IdPage {
    /// The ids of the page's points, in Qdrant's order. A point whose id cannot be read (no
    /// id, or text that is no UUID; Qdrant sends neither) is left out.
    pub keys: Vec<PointKey>,
    /// Where the next page starts; None after the last.
    pub next: Option<PointKey>,
}

impl IdScroll {
    /// Sets the connection up without connecting: an unreachable server shows at the first
    /// page, as a status the caller describes.
    pub fn new(settings: &super::grpc::Settings) -> Result<IdScroll, String> {
        let endpoint = settings.endpoint()?;
        let service = InterceptedService::new(endpoint.connect_lazy(), settings.api_key.clone());
        Ok(IdScroll {
            grpc: tonic::client::Grpc::new(service).max_decoding_message_size(usize::MAX),
        })
    }

    /// One page of ids for `request` (its payload and vector selectors are the caller's: ask
    /// for none, they are skipped here anyway).
    pub async fn page(&self, request: ScrollPoints) -> Result<IdPage, Status> {
        let mut grpc = self.grpc.clone();
        // The cause (refused, a certificate not trusted) stays in the status's source.
        grpc.ready().await.map_err(|e| {
            let mut status = Status::unavailable("transport error");
            status.set_source(std::sync::Arc::from(e));
            status
        })?;
        let path = PathAndQuery::from_static("/qdrant.Points/Scroll");
        let reply = grpc.unary(Request::new(request), path, IdCodec).await?;
        Ok(reply.into_inner())
    }
}

/// Sends the API key as Qdrant expects it, on every call.
#[derive(Clone)]
pub struct ApiKey(Option<AsciiMetadataValue>);

impl ApiKey {
    pub fn new(key: Option<&str>) -> Result<ApiKey, String> {
        match key {
            // Never echoed: the key is a secret even when it is malformed.
            Some(k) => MetadataValue::try_from(k)
                .map(|v| ApiKey(Some(v)))
                .map_err(|_| "qdrant.api_key is not a valid header value".to_string()),
            None => Ok(ApiKey(None)),
        }
    }
}

impl Interceptor for ApiKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("api-key", key.clone());
        }
        Ok(request)
    }
}

struct IdCodec;

impl Codec for IdCodec {
    type Encode = ScrollPoints;
    type Decode = IdPage;
    type Encoder = IdCodec;
    type Decoder = IdCodec;

    fn encoder(&mut self) -> IdCodec {
        IdCodec
    }

    fn decoder(&mut self) -> IdCodec {
        IdCodec
    }
}

impl Encoder for IdCodec {
    type Item = ScrollPoints;
    type Error = Status;

    fn encode(&mut self, item: ScrollPoints, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the scroll request: {e}")))
    }
}

impl Decoder for IdCodec {
    type Item = IdPage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<IdPage>, Status> {
        // The whole message is one contiguous buffer already; this takes it without a copy.
        let bytes = src.copy_to_bytes(src.remaining());
        read_page(&bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("cannot read Qdrant's scroll page: {e}")))
    }
}

// Field numbers and wire types of the messages read here (Qdrant's points.proto):
// ScrollResponse { PointId next_page_offset = 1; repeated RetrievedPoint result = 2; … }
// RetrievedPoint { PointId id = 1; … }
// PointId { oneof { uint64 num = 1; string uuid = 2; } }
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A ScrollResponse's ids and next offset.
pub fn read_page(bytes: &[u8]) -> Result<IdPage, String> {
    let mut wire = Wire(bytes);
    let mut page = IdPage::default();
    while let Some((field, kind)) = wire.key()? {
        match (field, kind) {
            (1, LEN) => {
                let key =
                    read_id(wire.len_delimited()?)?.ok_or("next_page_offset is not a point id")?;
                page.next = Some(key);
            }
            (2, LEN) => {
                if let Some(key) = read_point(wire.len_delimited()?)? {
                    page.keys.push(key);
                }
            }
            _ => wire.skip(kind)?,
        }
    }
    Ok(page)
}

/// A RetrievedPoint's id.
#[inline]
fn read_point(bytes: &[u8]) -> Result<Option<PointKey>, String> {
    let mut wire = Wire(bytes);
    let mut id = None;
    while let Some((field, kind)) = wire.key()? {
        match (field, kind) {
            // A repeated message field is merged; for a oneof, the last value wins.
            (1, LEN) => id = read_id(wire.len_delimited()?)?.or(id),
            _ => wire.skip(kind)?,
        }
    }
    Ok(id)
}

#[inline]
fn read_id(bytes: &[u8]) -> Result<Option<PointKey>, String> {
    let mut wire = Wire(bytes);
    let mut id = None;
    while let Some((field, kind)) = wire.key()? {
        match (field, kind) {
            (1, VARINT) => id = Some(PointKey::Num(wire.varint()?)),
            (2, LEN) => id = PointKey::uuid(wire.len_delimited()?),
            _ => wire.skip(kind)?,
        }
    }
    Ok(id)
}

/// Protocol buffers' wire format, as far as these messages need it.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7F) << (7 * i);
            if b < 0x80 {
                self.0 = &self.0[i + 1..];
                return Ok(value);
            }
        }
        Err("a varint is cut off or longer than 10 bytes".into())
    }

    /// The next field's number and wire type, or None at the end.
    #[inline]
    fn key(&mut self) -> Result<Option<(u64, u8)>, String> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        match key >> 3 {
            0 => Err("field number 0".into()),
            field => Ok(Some((field, (key & 7) as u8))),
        }
    }

    #[inline]
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).map_err(|_| "a length beyond memory")?;
        if n > self.0.len() {
            return Err(format!(
                "a field of {n} bytes with {} left in the message",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    #[inline]
    fn len_delimited(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(n)
    }

    #[inline]
    fn skip(&mut self, kind: u8) -> Result<(), String> {
        match kind {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(format!("wire type {other} (groups are not used by Qdrant)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use qdrant_client::qdrant::{
        PointId, RetrievedPoint, ScrollResponse, Usage, Value, VectorsOutput, value::Kind,
    };

    use super::*;

    fn point(id: Option<PointId>, payload: bool) -> RetrievedPoint {
        let mut p = RetrievedPoint {
            id,
            ..Default::default()
        };
        if payload {
            p.payload = HashMap::from([(
                "content_id".to_string(),
                Value {
                    kind: Some(Kind::IntegerValue(7)),
                },
            )]);
            p.vectors = Some(VectorsOutput::default());
        }
        p
    }

    fn uuid_id(text: &str) -> Option<PointId> {
        Some(PointId::from(text.to_string()))
    }

    #[test]
    fn reads_the_ids_qdrant_client_reads_and_skips_the_rest() {
        let reply = ScrollResponse {
            next_page_offset: uuid_id("6f1ed002-ab5d-5c5c-8a8f-2f6a3c0f7e01"),
            result: vec![
                point(Some(PointId::from(0)), false),
                point(Some(PointId::from(u64::MAX)), true),
                point(uuid_id("4a7d1ed4-1447-4e40-33ac-29ccb8653d9b"), true),
                point(uuid_id("4A7D1ED414474E4033AC29CCB8653D9C"), false),
                // No id, an id that is no UUID, and an all-digit UUID text: not read as keys.
                point(None, true),
                point(uuid_id("chunk-1"), false),
                point(uuid_id("42"), false),
            ],
            time: 0.25,
            usage: Some(Usage::default()),
        };
        let page = read_page(&reply.encode_to_vec()).unwrap();
        let expected: Vec<PointKey> = reply
            .result
            .iter()
            .filter_map(|p| p.id.as_ref().and_then(PointKey::from_grpc))
            .collect();
        assert_eq!(page.keys.len(), 4);
        assert_eq!(page.keys, expected);
        assert_eq!(page.next.map(PointKey::to_grpc), reply.next_page_offset);

        let last = ScrollResponse::default();
        assert_eq!(read_page(&last.encode_to_vec()).unwrap(), IdPage::default());
    }

    #[test]
    fn a_cut_or_garbled_page_is_an_error_never_a_panic() {
        let reply = ScrollResponse {
            next_page_offset: Some(PointId::from(3)),
            result: (0..50u64)
                .map(|n| point(Some(PointId::from(n)), n % 2 == 0))
                .collect(),
            time: 1.0,
            usage: None,
        };
        let bytes = reply.encode_to_vec();
        let whole = read_page(&bytes).unwrap();
        assert_eq!(whole.keys.len(), 50);
        // Every prefix either reads (it ends between fields) or is refused.
        for cut in 0..bytes.len() {
            if let Ok(page) = read_page(&bytes[..cut]) {
                assert!(page.keys.len() <= 50);
            }
        }
        // Every byte flipped: no panic, whatever comes out.
        for i in 0..bytes.len() {
            let mut garbled = bytes.clone();
            garbled[i] ^= 0xFF;
            let _ = read_page(&garbled);
        }
        assert!(read_page(&[0x0B]).unwrap_err().contains("wire type 3"));
        assert!(
            read_page(&[0x12, 0x05, 0x0A])
                .unwrap_err()
                .contains("5 bytes")
        );
        assert!(read_page(&[0x08, 0xFF]).unwrap_err().contains("varint"));
        assert!(read_page(&[0x00]).unwrap_err().contains("field number 0"));
    }
}

//! Point ids as Qdrant identifies them.
//!
//! Qdrant keeps an id either as a u64 or as a UUID and orders them with every number before
//! every UUID, UUIDs by their 128-bit value (its `ExtendedPointId` derives `Ord` that way). A
//! UUID arrives as text and is read with the `uuid` crate's `Uuid::parse_str`, exactly as Qdrant's
//! gRPC conversion (`TryFrom<PointId> for PointIdType` in its `api` crate) does, and is always
//! answered in the hyphenated lowercase form. `parse_str` takes the hyphenated form in any case,
//! the 32-hex simple form (so an MD5 hex digest is a UUID), and also the braced `{…}` and
//! `urn:uuid:…` forms, so real Qdrant takes those too (its documentation lists the urn form);
//! anything else is refused with Qdrant's `Unable to parse UUID: <text>`.

use qdrant_client::qdrant::PointId;
use qdrant_client::qdrant::point_id::PointIdOptions;
use tonic::Status;
use uuid::Uuid;

/// A stored point id. The derived order is Qdrant's: `Num` before `Uuid`, then by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PointKey {
    /// A 64-bit unsigned integer id.
    Num(u64),
    /// A UUID id, as its 128-bit big-endian value.
    Uuid(u128),
}

impl PointKey {
    /// Reads the textual form of a UUID id the way Qdrant does (`Uuid::parse_str`).
    pub fn parse_uuid(text: &str) -> Result<Self, Status> {
        Uuid::parse_str(text)
            .map(|uuid| PointKey::Uuid(uuid.as_u128()))
            .map_err(|_| Status::invalid_argument(format!("Unable to parse UUID: {text}")))
    }

    /// Converts a gRPC point id, with Qdrant's errors for a bad UUID or an empty id.
    pub fn from_grpc(id: &PointId) -> Result<Self, Status> {
        match &id.point_id_options {
            Some(PointIdOptions::Num(num)) => Ok(PointKey::Num(*num)),
            Some(PointIdOptions::Uuid(text)) => Self::parse_uuid(text),
            None => Err(Status::invalid_argument("No ID options provided")),
        }
    }

    /// The gRPC form Qdrant answers with: a number, or the hyphenated lowercase UUID.
    pub fn to_grpc(self) -> PointId {
        let options = match self {
            PointKey::Num(num) => PointIdOptions::Num(num),
            PointKey::Uuid(value) => PointIdOptions::Uuid(Uuid::from_u128(value).to_string()),
        };
        PointId {
            point_id_options: Some(options),
        }
    }
}

impl std::fmt::Display for PointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointKey::Num(num) => write!(f, "{num}"),
            PointKey::Uuid(value) => write!(f, "{}", Uuid::from_u128(*value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid_text(key: PointKey) -> String {
        match key.to_grpc().point_id_options {
            Some(PointIdOptions::Uuid(text)) => text,
            other => panic!("not a uuid: {other:?}"),
        }
    }

    #[test]
    fn an_md5_hex_digest_is_a_uuid_answered_hyphenated() {
        // md5("hello") — the deployment's older chunk ids look like this.
        let key = PointKey::parse_uuid("5d41402abc4b2a76b9719d911017c592").unwrap();
        assert_eq!(uuid_text(key), "5d41402a-bc4b-2a76-b971-9d911017c592");
    }

    #[test]
    fn hyphenated_is_read_in_any_case() {
        let upper = PointKey::parse_uuid("5D41402A-BC4B-2A76-B971-9D911017C592").unwrap();
        let lower = PointKey::parse_uuid("5d41402a-bc4b-2a76-b971-9d911017c592").unwrap();
        assert_eq!(upper, lower);
    }

    #[test]
    fn other_text_is_refused_with_qdrants_message() {
        for text in ["", "42", "not-a-uuid", "5d41402abc4b2a76b9719d911017c59"] {
            let err = PointKey::parse_uuid(text).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert_eq!(err.message(), format!("Unable to parse UUID: {text}"));
        }
    }

    #[test]
    fn numbers_order_before_uuids_and_uuids_by_value() {
        let mut keys = [
            PointKey::parse_uuid("00000000-0000-0000-0000-000000000002").unwrap(),
            PointKey::Num(u64::MAX),
            PointKey::parse_uuid("ffffffff-0000-0000-0000-000000000000").unwrap(),
            PointKey::Num(3),
            PointKey::parse_uuid("00000000-0000-0000-0000-000000000001").unwrap(),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "3",
                "18446744073709551615",
                "00000000-0000-0000-0000-000000000001",
                "00000000-0000-0000-0000-000000000002",
                "ffffffff-0000-0000-0000-000000000000",
            ]
        );
    }
}

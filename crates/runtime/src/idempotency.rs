//! The one way a keyed write is made idempotent, in every service.
//!
//! A write that a till, a shop or another service may retry carries a key, unique within its
//! tenant and scope (`sale:pos-1` for the sales of one source, `redeem`, `hold`…). The first
//! write under a key records a digest of its request and the response it got, in the same
//! transaction as its effect. The same key again, with the same request, is answered with the
//! recorded response, unchanged; with another request it is refused, naming the first field that
//! differs. Records are kept for good.
//!
//! The request itself is not kept, only its digest: the SHA-256 of its encoding, and a short hash
//! of each top-level field. Enough to tell a replay from a conflict and to name the field,
//! without keeping a buyer's phone number for ever.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use prost::encoding::{DecodeContext, decode_key, skip_field};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr};
use sha2::{Digest, Sha256};

use crate::db::{Writes, find_by_keys};

/// What tells a request from another without keeping it: the SHA-256 of its encoding, and a
/// short hash of each top-level field (every occurrence of a repeated field, in order) to name
/// the field in which two requests differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDigest {
    whole: [u8; 32],
    /// By field number, ascending.
    fields: Vec<(u32, u64)>,
}

impl RequestDigest {
    /// The digest of a request.
    pub fn of(request: &impl prost::Message) -> Self {
        let encoded = request.encode_to_vec();
        // A message prost has just encoded always splits into fields.
        Self::of_encoded(&encoded).unwrap_or_else(|| Self {
            whole: Sha256::digest(&encoded).into(),
            fields: Vec::new(),
        })
    }

    /// The digest of an encoded request; `None` when it is not a protobuf message.
    pub fn of_encoded(encoded: &[u8]) -> Option<Self> {
        let mut fields: Vec<(u32, u64)> = Vec::new();
        let mut rest = encoded;
        while !rest.is_empty() {
            let start = encoded.len() - rest.len();
            let (number, wire_type) = decode_key(&mut rest).ok()?;
            skip_field(wire_type, number, &mut rest, DecodeContext::default()).ok()?;
            let bytes = &encoded[start..encoded.len() - rest.len()];
            match fields.iter_mut().find(|(seen, _)| *seen == number) {
                Some((_, hash)) => *hash = crate::fnv1a(*hash, bytes),
                None => fields.push((number, crate::fnv1a(crate::FNV_OFFSET, bytes))),
            }
        }
        fields.sort_unstable_by_key(|(number, _)| *number);
        Some(Self {
            whole: Sha256::digest(encoded).into(),
            fields,
        })
    }

    fn field(&self, number: u32) -> Option<u64> {
        self.fields
            .iter()
            .find(|(field, _)| *field == number)
            .map(|(_, hash)| *hash)
    }

    /// The number of the first field, in field order, that one request has and the other has not
    /// or has with another value; `None` when the requests are the same.
    pub fn first_difference(&self, other: &Self) -> Option<u32> {
        if self.whole == other.whole {
            return None;
        }
        let numbers = || self.fields.iter().chain(&other.fields).map(|(number, _)| *number);
        let differing = numbers()
            .filter(|number| self.field(*number) != other.field(*number))
            .min();
        // Fields whose short hashes collide still differ as a whole: the first field stands in.
        differing.or_else(|| numbers().min())
    }

    /// As stored: the whole digest, then each field's number and hash (big-endian, 4 and 8
    /// bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(32 + self.fields.len() * 12);
        bytes.extend_from_slice(&self.whole);
        for (number, hash) in &self.fields {
            bytes.extend_from_slice(&number.to_be_bytes());
            bytes.extend_from_slice(&hash.to_be_bytes());
        }
        bytes
    }

    /// As [`to_bytes`](Self::to_bytes) stored it; `None` when the bytes are not a digest.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (whole, fields) = bytes.split_at_checked(32)?;
        if !fields.len().is_multiple_of(12) {
            return None;
        }
        let fields = fields.chunks_exact(12).map(|chunk| {
            let (number, hash) = chunk.split_at(4);
            Some((
                u32::from_be_bytes(number.try_into().ok()?),
                u64::from_be_bytes(hash.try_into().ok()?),
            ))
        });
        Some(Self {
            whole: whole.try_into().ok()?,
            fields: fields.collect::<Option<Vec<_>>>()?,
        })
    }
}

/// The name of field `number` of message `M`, as the contract names it (`amount`); the number
/// itself when the contract does not know it.
pub fn field_name<M: prost::Name>(number: u32) -> String {
    static DESCRIPTORS: OnceLock<prost_types::FileDescriptorSet> = OnceLock::new();
    let descriptors =
        DESCRIPTORS.get_or_init(|| prost::Message::decode(quanyu_proto::FILE_DESCRIPTOR_SET).unwrap_or_default());
    descriptors
        .file
        .iter()
        .filter(|file| file.package() == M::PACKAGE)
        .flat_map(|file| &file.message_type)
        .filter(|message| message.name() == M::NAME)
        .flat_map(|message| &message.field)
        .find(|field| field.number() == i32::try_from(number).unwrap_or(-1))
        .map_or_else(|| format!("field {number}"), |field| field.name().to_owned())
}

/// A keyed write as recorded.
#[derive(Debug, Clone)]
pub struct Record {
    pub request: RequestDigest,
    /// The encoded response the first write got.
    pub response: Vec<u8>,
}

/// A keyed write, told against what was recorded under its key.
#[derive(Debug, PartialEq, Eq)]
pub enum Replay<'a> {
    /// Nothing is recorded under the key: the write is to be done.
    First,
    /// The same request again: answer with the recorded response.
    Same(&'a [u8]),
    /// Another request under a key already used: refuse it, naming this field.
    Conflict { field: u32 },
}

impl Record {
    pub fn replay(&self, request: &RequestDigest) -> Replay<'_> {
        match self.request.first_difference(request) {
            None => Replay::Same(&self.response),
            Some(field) => Replay::Conflict { field },
        }
    }
}

/// Tells a write under a key from what is recorded under it, if anything.
pub fn replay<'a>(recorded: Option<&'a Record>, request: &RequestDigest) -> Replay<'a> {
    recorded.map_or(Replay::First, |record| record.replay(request))
}

/// What is recorded under `keys` in `scope`, by key, read by one index probe per key (locked
/// for update when `lock`). A record that does not decode is left out, with a warning: its write
/// is then taken for a first one, and its key's insert fails.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    scope: &str,
    keys: Vec<String>,
    lock: bool,
) -> Result<HashMap<String, Record>, DbErr> {
    let scoped = [
        (entity::Column::TenantId, tenant_id.into()),
        (entity::Column::Scope, scope.into()),
    ];
    let rows = find_by_keys::<entity::Entity, _>(db, &scoped, entity::Column::Key, keys, lock).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match RequestDigest::from_bytes(&row.request_digest) {
            Some(request) => Some((
                row.key,
                Record {
                    request,
                    response: row.response,
                },
            )),
            None => {
                tracing::warn!(scope, key = row.key, "an idempotency record does not decode");
                None
            }
        })
        .collect())
}

/// A write to record under its key.
pub struct NewRecord {
    pub scope: String,
    pub key: String,
    pub request: RequestDigest,
    pub response: Vec<u8>,
}

/// Adds the inserts of new records to a transaction's writes. A key recorded meanwhile by a
/// concurrent transaction fails the insert (a unique violation, which `with_retries` retries:
/// the retry then finds the record and replays it).
pub fn record(writes: &mut Writes, tenant_id: &str, records: Vec<NewRecord>, at: DateTime<Utc>) {
    let rows = records
        .into_iter()
        .map(|new| entity::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            scope: Set(new.scope),
            key: Set(new.key),
            request_digest: Set(new.request.to_bytes()),
            response: Set(new.response),
            recorded_at: Set(at),
        })
        .collect();
    writes.insert_many(rows, None);
}

/// The `idempotency` table, in each service's own schema.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        /// [`RequestDigest::to_bytes`](super::RequestDigest::to_bytes).
        pub request_digest: Vec<u8>,
        pub response: Vec<u8>,
        pub recorded_at: ChronoDateTimeUtc,
    }

    crate::no_relations!();
}

/// The migration that creates the `idempotency` table; each service lists it among its own.
pub struct CreateIdempotency;

impl sea_orm_migration::MigrationName for CreateIdempotency {
    fn name(&self) -> &str {
        "m20261203_000001_create_idempotency"
    }
}

#[async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for CreateIdempotency {
    async fn up(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        use sea_orm_migration::schema::{binary, string, timestamp_with_time_zone};
        let columns = vec![
            string("tenant_id"),
            string("scope"),
            string("key"),
            binary("request_digest"),
            binary("response"),
            timestamp_with_time_zone("recorded_at"),
        ];
        let table = crate::db::schema::table("idempotency", columns, &["tenant_id", "scope", "key"]);
        manager.create_table(table).await?;
        crate::db::schema::compare_keys_as_bytes(manager, "idempotency", &["tenant_id", "scope", "key"]).await
    }

    async fn down(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        let drop = sea_orm_migration::prelude::Table::drop()
            .table("idempotency")
            .if_exists()
            .to_owned();
        manager.drop_table(drop).await
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use quanyu_proto::common::v1::Money;
    use quanyu_proto::points::v1::{Sale, SaleLine};

    use super::*;

    fn sale() -> Sale {
        Sale {
            source: "pos-1".into(),
            transaction_id: "t-1".into(),
            amount: Some(Money {
                amount_minor: 12_800,
                currency: "CNY".into(),
            }),
            lines: vec![SaleLine {
                sku: "a".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_same_request_replays_and_another_names_its_first_differing_field() {
        let first = Record {
            request: RequestDigest::of(&sale()),
            response: b"answer".to_vec(),
        };
        assert_eq!(first.replay(&RequestDigest::of(&sale())), Replay::Same(b"answer"));
        let more = Sale {
            amount: Some(Money {
                amount_minor: 99,
                currency: "CNY".into(),
            }),
            store_id: "s-9".into(),
            ..sale()
        };
        let Replay::Conflict { field } = first.replay(&RequestDigest::of(&more)) else {
            panic!("a different request is a conflict");
        };
        assert_eq!(field_name::<Sale>(field), "store_id", "the first field in field order");
        let fewer_lines = Sale {
            lines: Vec::new(),
            ..sale()
        };
        let Replay::Conflict { field } = first.replay(&RequestDigest::of(&fewer_lines)) else {
            panic!("a field left out is a difference");
        };
        assert_eq!(field_name::<Sale>(field), "lines");
        assert_eq!(replay(None, &RequestDigest::of(&sale())), Replay::First);
    }

    #[test]
    fn a_digest_is_stored_and_read_back_whole() {
        let digest = RequestDigest::of(&sale());
        assert_eq!(RequestDigest::from_bytes(&digest.to_bytes()), Some(digest));
        assert_eq!(RequestDigest::from_bytes(&[1, 2, 3]), None);
        assert_eq!(RequestDigest::of_encoded(&[0xff]), None);
    }

    proptest! {
        /// Two requests have the same digest exactly when they encode the same.
        #[test]
        fn digests_differ_exactly_when_requests_do(
            a in 0i64..3, b in 0i64..3, store_a in "[ab]?", store_b in "[ab]?",
        ) {
            let with = |amount: i64, store: &str| Sale {
                points_redeemed: amount,
                store_id: store.to_owned(),
                ..sale()
            };
            let (first, second) = (with(a, &store_a), with(b, &store_b));
            let same = prost::Message::encode_to_vec(&first) == prost::Message::encode_to_vec(&second);
            prop_assert_eq!(RequestDigest::of(&first) == RequestDigest::of(&second), same);
        }
    }
}

//! Whole batches answered with one read.
//!
//! A POS that got no answer to a call sends the same batch again. Each of its sales is recorded
//! under its key, and answering them one by one takes an index probe and a comparison a sale. A
//! batch whose every sale was recorded therefore keeps the answer its replay gets, by a digest of
//! its sales, and the same batch again is answered from that with one read. A batch that differs
//! in anything, or had a sale rejected (which may apply when sent again), is answered sale by sale.

use chrono::{DateTime, Utc};
use prost::Message;
use quanyu_proto::points::v1 as pb;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use sha2::{Digest, Sha256};

use super::Result;
use super::entity::batch_answers;

/// Names a batch by its sales, in order, as encoded.
pub fn digest(sales: &[pb::Sale]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for sale in sales {
        hasher.update(sale.encode_length_delimited_to_vec());
    }
    hasher.finalize().to_vec()
}

/// The answer kept for the batch named `digest`, if every sale of it was recorded. One that does
/// not decode is passed over: the batch is then answered sale by sale.
pub async fn find(db: &DatabaseConnection, tenant_id: &str, digest: &[u8]) -> Result<Option<Vec<pb::SaleResult>>> {
    let row = batch_answers::Entity::find_by_id((tenant_id.to_owned(), digest.to_vec()))
        .one(db)
        .await?;
    Ok(
        row.and_then(|row| match pb::RecordSalesResponse::decode(row.answer.as_slice()) {
            Ok(answer) => Some(answer.results),
            Err(error) => {
                tracing::warn!(%error, "a kept batch answer does not decode; answering sale by sale");
                None
            }
        }),
    )
}

/// Keeps what a replay of the batch named `digest` is answered, if every sale of it is recorded
/// now (applied or a duplicate): each applied sale becomes a duplicate of itself.
pub async fn keep(
    db: &DatabaseConnection,
    tenant_id: &str,
    digest: Vec<u8>,
    results: &[pb::SaleResult],
    at: DateTime<Utc>,
) -> Result<()> {
    let mut replayed = Vec::with_capacity(results.len());
    for result in results {
        match pb::SaleOutcome::try_from(result.outcome) {
            Ok(pb::SaleOutcome::Applied) => replayed.push(pb::SaleResult {
                index: result.index,
                outcome: pb::SaleOutcome::Duplicate.into(),
                original: Some(Box::new(result.clone())),
                ..Default::default()
            }),
            Ok(pb::SaleOutcome::Duplicate) => replayed.push(result.clone()),
            _ => return Ok(()),
        }
    }
    let row = batch_answers::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        digest: Set(digest),
        answer: Set(pb::RecordSalesResponse { results: replayed }.encode_to_vec()),
        recorded_at: Set(at),
    };
    // The same batch answered twice at once keeps one answer: both are the same.
    batch_answers::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([batch_answers::Column::TenantId, batch_answers::Column::Digest])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(key: &str) -> pb::Sale {
        pb::Sale {
            source: "pos".into(),
            transaction_id: key.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_is_named_by_its_sales_in_order() {
        let batch = [sale("a"), sale("b")];
        assert_eq!(digest(&batch), digest(&batch.clone()));
        assert_ne!(digest(&batch), digest(&[sale("b"), sale("a")]));
        assert_ne!(digest(&batch), digest(&[sale("a")]));
        // Sales are delimited: moving a byte from one to the next is another batch.
        assert_ne!(digest(&batch), digest(&[sale("ab"), sale("")]));
    }
}

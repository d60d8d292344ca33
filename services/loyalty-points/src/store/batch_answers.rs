//! Whole batches' answers, kept by a digest of the batch (see `app::sales` for when).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};

use super::entity::batch_answers;

/// The encoded answer kept for the batch named `digest`, if any.
pub async fn find(db: &DatabaseConnection, tenant_id: &str, digest: &[u8]) -> Result<Option<Vec<u8>>, DbErr> {
    let row = batch_answers::Entity::find_by_id((tenant_id.to_owned(), digest.to_vec()))
        .one(db)
        .await?;
    Ok(row.map(|row| row.answer))
}

/// Keeps `answer` for the batch named `digest`; the same batch answered twice at once keeps one
/// answer, as both are the same.
pub async fn keep(
    db: &DatabaseConnection,
    tenant_id: &str,
    digest: Vec<u8>,
    answer: Vec<u8>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let row = batch_answers::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        digest: Set(digest),
        answer: Set(answer),
        recorded_at: Set(at),
    };
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

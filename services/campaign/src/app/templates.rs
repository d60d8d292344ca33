//! Creating and reading coupon templates.

use chrono::{DateTime, Utc};
use prost::Message as _;
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::db::{begin_write, with_retries};
use quanyu_runtime::error::quote;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::template_to_pb;
use crate::domain::template::{self, Template};
use crate::error::CampaignError;
use crate::store;
use crate::store::entity::coupon_templates;

/// Creates a template, or answers the same one created before under its id.
pub async fn create(
    db: &DatabaseConnection,
    tenant_id: &str,
    definition: pb::CouponTemplate,
    now: DateTime<Utc>,
) -> Result<pb::CouponTemplate, CampaignError> {
    // Read-only fields are the service's to fill: a template read back and sent again is the same.
    let definition = pb::CouponTemplate {
        issued: 0,
        created_at: None,
        ..definition
    };
    let template = template::check(&definition)?;
    let encoded = definition.encode_to_vec();
    with_retries(|| async {
        let txn = begin_write(db).await?;
        if let Some(existing) = store::templates::find(&txn, tenant_id, &template.template_id).await? {
            super::unchanged(&existing.definition, &definition, ("template", &template.template_id))?;
            return template_to_pb(&existing);
        }
        let limits = (template.stock, template.per_member_limit);
        store::templates::insert(&txn, tenant_id, &template.template_id, encoded.clone(), limits, now).await?;
        let created = store::templates::find(&txn, tenant_id, &template.template_id).await?;
        txn.commit().await?;
        template_to_pb(&created.ok_or_else(|| CampaignError::NotFound("the template just created".into()))?)
    })
    .await
}

/// A template, as stored and as the rules read it; NOT_FOUND naming `field` when there is none.
pub async fn load<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    template_id: &str,
) -> Result<(coupon_templates::Model, Template), CampaignError> {
    let row = store::templates::find(db, tenant_id, template_id)
        .await?
        .ok_or_else(|| CampaignError::NotFound(format!("coupon template {} not found", quote(template_id))))?;
    let definition =
        pb::CouponTemplate::decode(row.definition.as_slice()).map_err(|error| super::undecodable("template", error))?;
    Ok((row, Template::of_definition(&definition)))
}

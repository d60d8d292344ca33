//! What campaigns and coupon templates achieved, as campaign's events told it.

use quanyu_proto::analytics::v1 as pb;
use quanyu_runtime::error::Violations;
use sea_orm::DatabaseConnection;

use crate::error::AnalyticsError;
use crate::store::campaigns::{self, Scope};

/// The most campaigns, and templates, one call asks about.
const MAX_ASKED: usize = 100;

/// The results of the campaigns and coupon templates asked, each in the order asked.
pub async fn results(
    db: &DatabaseConnection,
    tenant_id: &str,
    (campaign_ids, template_ids): (&[String], &[String]),
) -> Result<(Vec<pb::CampaignResult>, Vec<pb::CampaignResult>), AnalyticsError> {
    let mut violations = Violations::default();
    for (field, ids) in [("campaign_ids", campaign_ids), ("coupon_template_ids", template_ids)] {
        if ids.len() > MAX_ASKED {
            violations.add(field, format!("must list at most {MAX_ASKED}"));
        }
    }
    if campaign_ids.is_empty() && template_ids.is_empty() {
        violations.add("campaign_ids", "name a campaign or a coupon template");
    }
    violations.into_result()?;
    let campaigns = answer(db, tenant_id, Scope::Campaign, campaign_ids).await?;
    let templates = answer(db, tenant_id, Scope::Template, template_ids).await?;
    Ok((campaigns, templates))
}

async fn answer(
    db: &DatabaseConnection,
    tenant_id: &str,
    scope: Scope,
    ids: &[String],
) -> Result<Vec<pb::CampaignResult>, AnalyticsError> {
    let results = campaigns::results(db, tenant_id, scope, ids).await?;
    Ok(ids.iter().zip(results).map(|(id, result)| to_pb(id, result)).collect())
}

fn to_pb(id: &str, result: campaigns::Outcome) -> pb::CampaignResult {
    let counts = result.counts;
    let kept = counts.coupons_redeemed - counts.coupons_restored;
    pb::CampaignResult {
        id: id.to_owned(),
        members_reached: result.members_reached,
        rewards: counts.rewards,
        points_granted: counts.points_granted,
        coupons_issued: counts.coupons_issued,
        coupons_redeemed: counts.coupons_redeemed,
        coupons_restored: counts.coupons_restored,
        redemption_rate: redemption_rate(kept, counts.coupons_issued),
    }
}

/// Redemptions kept ÷ coupons issued; 0 when none were issued.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn redemption_rate(kept: i64, issued: i64) -> f64 {
    if issued > 0 { kept as f64 / issued as f64 } else { 0.0 }
}

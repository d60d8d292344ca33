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
    let inviters = campaigns::results(db, tenant_id, Scope::Inviters, campaign_ids).await?;
    let campaigns = campaigns::results(db, tenant_id, Scope::Campaign, campaign_ids).await?;
    let campaigns = (campaign_ids.iter().zip(campaigns).zip(inviters))
        .map(|((id, result), inviters)| to_pb(id, result, inviters.members_reached))
        .collect();
    let templates = campaigns::results(db, tenant_id, Scope::Template, template_ids).await?;
    let templates = (template_ids.iter().zip(templates))
        .map(|(id, result)| to_pb(id, result, 0))
        .collect();
    Ok((campaigns, templates))
}

fn to_pb(id: &str, result: campaigns::Outcome, inviters: i64) -> pb::CampaignResult {
    let counts = result.counts;
    let kept = counts.coupons_redeemed - counts.coupons_restored;
    pb::CampaignResult {
        inviters,
        invitees: counts.invitees,
        invitees_qualified: counts.invitees_qualified,
        k_factor: ratio(counts.invitees_qualified, inviters),
        id: id.to_owned(),
        members_reached: result.members_reached,
        rewards: counts.rewards,
        points_granted: counts.points_granted,
        coupons_issued: counts.coupons_issued,
        coupons_redeemed: counts.coupons_redeemed,
        coupons_restored: counts.coupons_restored,
        redemption_rate: ratio(kept, counts.coupons_issued),
    }
}

/// `part` ÷ `whole`; 0 when the whole is none.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio(part: i64, whole: i64) -> f64 {
    if whole > 0 { part as f64 / whole as f64 } else { 0.0 }
}

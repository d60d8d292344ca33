//! What campaign takes from the other services' streams: merges (a merged member's coupons and
//! counts move to the survivor) and refunds (a fully refunded order gives its coupons back).
//! Each event is applied in the consumer's transaction with its cursor, so exactly once.

use quanyu_outbox::consumer::EventHandler;
use quanyu_proto::events::event_type_of;
use quanyu_proto::events::v1::Event;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::points::v1::{SaleKind, SaleRecorded};
use quanyu_runtime::clock::Clock;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::events;
use crate::store;

/// The identity events campaign reads.
pub fn identity_event_types() -> Vec<String> {
    vec![event_type_of::<quanyu_proto::identity::v1::MembersMerged>()]
}

/// The points events campaign reads.
pub fn points_event_types() -> Vec<String> {
    vec![event_type_of::<SaleRecorded>()]
}

pub struct Effects {
    pub clock: Clock,
}

#[async_trait::async_trait]
impl EventHandler for Effects {
    async fn apply(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), DbErr> {
        let tenant_id = event.tenant_id.as_str();
        match &event.payload {
            Some(Payload::MembersMerged(merged)) => {
                store::members::fold(txn, tenant_id, &merged.survivor_id, &merged.merged_member_id).await
            }
            Some(Payload::SaleRecorded(sale)) if sale.kind == i32::from(SaleKind::Refund) => {
                self.refund(txn, tenant_id, sale).await
            }
            _ => Ok(()),
        }
    }
}

impl Effects {
    /// Adds a refund to the order's redemption; once the refunds cover the order, gives back its
    /// coupons that are still valid.
    async fn refund(&self, txn: &DatabaseTransaction, tenant_id: &str, sale: &SaleRecorded) -> Result<(), DbErr> {
        let order = (sale.source.as_str(), sale.original_transaction_id.as_str());
        let refunded = sale.amount.as_ref().map_or(0, |amount| amount.amount_minor);
        let Some(redemption) = store::coupons::add_refund(txn, tenant_id, order, refunded).await? else {
            return Ok(());
        };
        if redemption.restored || redemption.refunded_minor < redemption.amount_minor {
            return Ok(());
        }
        let restored = store::coupons::restore(txn, tenant_id, order, self.clock.now()).await?;
        let events = restored.iter().map(|coupon| events::restored(coupon, order)).collect();
        quanyu_outbox::append(txn, events).await?;
        // Counted before the consumer's commit: a failed commit retries, and may count twice.
        crate::app::coupons::counted("restored", restored.len());
        Ok(())
    }
}

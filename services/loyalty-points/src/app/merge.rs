//! Folds merged members' accounts into their survivors', from member-identity's MembersMerged
//! events: lots keep their expiry, growth adds up, the tier is re-evaluated, and later calls
//! that name the merged member reach the survivor. Exactly once: the fold and the consumer's
//! cursor commit together.

use chrono::{DateTime, Utc};
use quanyu_outbox::consumer::EventHandler;
use quanyu_proto::events::v1::Event;
use quanyu_proto::events::v1::event::Payload;
use quanyu_runtime::db::Writes;
use sea_orm::{DatabaseTransaction, DbErr};

use super::save_accounts;
use crate::error::PointsError;
use crate::store;

pub struct MergeFolder {
    pub clock: quanyu_runtime::clock::Clock,
}

#[async_trait::async_trait]
impl EventHandler for MergeFolder {
    async fn apply(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), DbErr> {
        let Some(Payload::MembersMerged(merged)) = &event.payload else {
            return Ok(());
        };
        let at = self.clock.now();
        fold(txn, &event.tenant_id, &merged.survivor_id, &merged.merged_member_id, at)
            .await
            .map_err(|error| {
                DbErr::Custom(format!(
                    "folding {} into {}: {error}",
                    merged.merged_member_id, merged.survivor_id
                ))
            })
    }
}

/// Moves every account of `loser` into `survivor`'s in the same program, and records that
/// `loser` now means `survivor`. Folding the same pair again changes nothing.
async fn fold(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    survivor: &str,
    loser: &str,
    at: DateTime<Utc>,
) -> Result<(), PointsError> {
    store::aliases::record(txn, tenant_id, survivor, loser, at).await?;
    let programs = super::programs::load(txn, tenant_id).await?;
    let mut events = Vec::new();
    let mut writes = Writes::new(txn);
    for (program_id, (program, _)) in &programs {
        if !store::accounts::exists(txn, tenant_id, program_id, loser).await? {
            continue;
        }
        let loser_id = (program_id.clone(), loser.to_owned());
        let survivor_id = (program_id.clone(), survivor.to_owned());
        let wanted = [survivor_id.clone(), loser_id.clone()];
        let mut loaded = store::accounts::load(txn, tenant_id, &programs, wanted, at).await?;
        let (Some(mut kept), Some(mut merged)) = (loaded.remove(&survivor_id), loaded.remove(&loser_id)) else {
            continue;
        };
        kept.ledger.absorb(&mut merged.ledger, at, &format!("merge:{loser}"))?;
        kept.tier.absorb(&program.ladder, &merged.tier);
        merged.tier.period_growth = 0;
        merged.tier.lifetime_growth = 0;
        // A merge moves points between members, creating or spending none: the consumer commits
        // the transaction, and its entries are not counted.
        let (merged_events, _moved) =
            save_accounts(&mut writes, tenant_id, &programs, &mut [&mut kept, &mut merged], at);
        events.extend(merged_events);
    }
    quanyu_outbox::append_to(&mut writes, events);
    writes.execute(txn).await?;
    Ok(())
}

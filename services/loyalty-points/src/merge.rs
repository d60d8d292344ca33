//! Folds merged members' accounts into their survivors', from member-identity's MembersMerged
//! events: lots keep their expiry, growth adds up, the tier is re-evaluated, and later calls
//! that name the merged member reach the survivor. Exactly once: the fold and the consumer's
//! cursor commit together.

use quanyu_outbox::consumer::EventHandler;
use quanyu_proto::events::v1::Event;
use quanyu_proto::events::v1::event::Payload;
use sea_orm::{DatabaseTransaction, DbErr};

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
        store::fold_merged(txn, &event.tenant_id, &merged.survivor_id, &merged.merged_member_id, at)
            .await
            .map_err(|error| {
                DbErr::Custom(format!(
                    "folding {} into {}: {error}",
                    merged.merged_member_id, merged.survivor_id
                ))
            })
    }
}

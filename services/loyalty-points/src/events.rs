//! The events loyalty-points publishes on its stream, built from what a use case changed:
//! `PointsChanged` per ledger entry, `TierChanged`, `HoldPlaced`, `HoldReleased`, and
//! `SaleRecorded` per sale applied.

use quanyu_outbox::NewEvent;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::points::v1 as pb;

use crate::convert::{entry_kind_to_pb, hold_end_to_pb};
use crate::domain::account::Account;
use crate::domain::ledger::Entry;
use crate::domain::program::Programs;

/// An event about an account.
fn account_event(tenant_id: &str, account: &Account, payload: Payload) -> NewEvent {
    NewEvent {
        tenant_id: tenant_id.to_owned(),
        aggregate_type: "account",
        aggregate_id: format!("{}/{}", account.program_id, account.member_id),
        payload,
    }
}

/// The events of what saving `accounts` changed, given the entries each appended (in the same
/// order): its entries, its tier, its holds.
pub fn of_accounts(
    tenant_id: &str,
    programs: &Programs,
    accounts: &[&mut Account],
    appended: &[Vec<Entry>],
) -> Vec<NewEvent> {
    accounts
        .iter()
        .zip(appended)
        .flat_map(|(account, entries)| {
            let version = programs.get(&account.program_id).map_or(0, |(_, version)| *version);
            of_account(tenant_id, account, entries, version)
        })
        .collect()
}

fn of_account(tenant_id: &str, account: &Account, appended: &[Entry], rules_version: u32) -> Vec<NewEvent> {
    let (program_id, member_id) = (account.program_id.as_str(), account.member_id.as_str());
    let event = |payload| account_event(tenant_id, account, payload);
    let mut events: Vec<NewEvent> = appended
        .iter()
        .map(|entry| {
            event(Payload::PointsChanged(pb::PointsChanged {
                member_id: member_id.to_owned(),
                program_id: program_id.to_owned(),
                kind: entry_kind_to_pb(entry.kind).into(),
                points: entry.amount,
                balance_after: entry.balance_after,
                reference: entry.reference.clone(),
                rules_version,
            }))
        })
        .collect();
    if let Some((from_tier, to_tier)) = account.tier_change() {
        events.push(event(Payload::TierChanged(pb::TierChanged {
            member_id: member_id.to_owned(),
            program_id: program_id.to_owned(),
            from_tier: from_tier.to_owned(),
            to_tier: to_tier.to_owned(),
        })));
    }
    for hold in account.placed_holds() {
        events.push(event(Payload::HoldPlaced(pb::HoldPlaced {
            member_id: member_id.to_owned(),
            program_id: program_id.to_owned(),
            hold_id: hold.id.to_string(),
            points: hold.amount,
            expires_at: Some(quanyu_runtime::clock::to_proto(hold.expires_at)),
        })));
    }
    for (hold, end) in &account.ended_holds {
        events.push(event(Payload::HoldReleased(pb::HoldReleased {
            member_id: member_id.to_owned(),
            program_id: program_id.to_owned(),
            hold_id: hold.id.to_string(),
            points: hold.amount,
            end: hold_end_to_pb(*end).into(),
        })));
    }
    events
}

/// The event of a sale applied: the sale as received, with what it did.
pub fn sale_recorded(tenant_id: &str, sale: &pb::Sale, result: &pb::SaleResult) -> NewEvent {
    let recorded = pb::SaleRecorded {
        source: sale.source.clone(),
        transaction_id: sale.transaction_id.clone(),
        kind: sale.kind,
        member_id: result.member_id.clone(),
        program_id: result.program_id.clone(),
        channel: sale.channel,
        brand_id: sale.brand_id.clone(),
        store_id: sale.store_id.clone(),
        amount: sale.amount.clone(),
        occurred_at: sale.occurred_at,
        points_earned: result.points_earned,
        points_redeemed: result.points_redeemed,
        points_reversed: result.points_reversed,
        lines: sale.lines.clone(),
        original_transaction_id: sale.original_transaction_id.clone(),
    };
    NewEvent {
        tenant_id: tenant_id.to_owned(),
        aggregate_type: "sale",
        aggregate_id: format!("{}/{}", sale.source, sale.transaction_id),
        payload: Payload::SaleRecorded(recorded),
    }
}

//! The events member-identity publishes on its stream, built from what a use case changed.

use quanyu_outbox::NewEvent;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::identity::v1 as pb;

use crate::convert::identity_to_pb;
use crate::domain::identity::Identity;

/// An event about a member.
pub fn member_event(tenant_id: &str, member_id: &str, payload: Payload) -> NewEvent {
    NewEvent {
        tenant_id: tenant_id.to_owned(),
        aggregate_type: "member",
        aggregate_id: member_id.to_owned(),
        payload,
    }
}

pub fn linked_events(tenant_id: &str, member_id: &str, linked: &[Identity]) -> Vec<NewEvent> {
    linked
        .iter()
        .map(|identity| {
            let payload = Payload::IdentityLinked(pb::IdentityLinked {
                member_id: member_id.to_owned(),
                identity: Some(identity_to_pb(identity)),
            });
            member_event(tenant_id, member_id, payload)
        })
        .collect()
}

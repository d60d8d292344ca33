//! Quanyu's gRPC contract, generated from `proto/` at build time.

/// The encoded file descriptor set of every Quanyu proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

pub mod codec;

pub mod common {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("quanyu.common.v1");
    }
}

pub mod identity {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("quanyu.identity.v1");
    }
}

pub mod events {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("quanyu.events.v1");
        include!(concat!(env!("OUT_DIR"), "/event_types.rs"));
    }

    /// The stream name of events of type `M`: `<area>.<Message>` (`identity.MembersMerged`), as
    /// [`v1::event::Payload::event_type`] names them.
    pub fn event_type_of<M: prost::Name>() -> String {
        let area = M::PACKAGE
            .strip_prefix("quanyu.")
            .and_then(|rest| rest.split('.').next())
            .unwrap_or(M::PACKAGE);
        format!("{area}.{}", M::NAME)
    }
}

pub mod analytics {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("quanyu.analytics.v1");
    }
}

pub mod campaign {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("quanyu.campaign.v1");
    }
}

pub mod points {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("quanyu.points.v1");
    }
}

#[cfg(test)]
mod tests {
    use super::events::event_type_of;
    use super::events::v1::event::Payload;
    use super::{identity, points};

    #[test]
    fn event_types_are_named_after_their_messages() {
        let merged = Payload::MembersMerged(identity::v1::MembersMerged::default());
        assert_eq!(merged.event_type(), "identity.MembersMerged");
        assert_eq!(event_type_of::<identity::v1::MembersMerged>(), "identity.MembersMerged");
        let sale = Payload::SaleRecorded(points::v1::SaleRecorded::default());
        assert_eq!(sale.event_type(), event_type_of::<points::v1::SaleRecorded>());
    }
}

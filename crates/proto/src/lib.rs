//! Quanyu's gRPC contract, generated from `proto/` at build time.

/// The encoded file descriptor set of every Quanyu proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

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
    }
}

pub mod points {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("quanyu.points.v1");
    }
}

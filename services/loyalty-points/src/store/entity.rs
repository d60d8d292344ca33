//! sea-orm entities of the loyalty-points schema, keyed by `tenant_id` first.

pub mod programs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "programs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub brand_id: String,
        pub rules_version: i32,
        /// The encoded `quanyu.points.v1.Program`.
        pub definition: Vec<u8>,
        pub updated_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod accounts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub program_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub balance: i64,
        pub growth_period: i64,
        pub growth_lifetime: i64,
        /// The calendar year `growth_period` belongs to.
        pub growth_year: i32,
        pub tier: String,
        /// The last lot or hold id handed out.
        pub next_id: i64,
        pub updated_at: ChronoDateTimeUtc,
        /// The open lots and holds (`store::ledger_state`); none when empty.
        pub ledger: Option<Vec<u8>>,
        /// The soonest lot expiry or hold lapse, for the background sweep.
        pub next_due: Option<ChronoDateTimeUtc>,
    }

    quanyu_runtime::no_relations!();
}

pub mod entries {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "entries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        /// UUIDv7: ordered by time. The key is (tenant, program, member, id): history pages by it.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub program_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub kind: String,
        pub points: i64,
        pub balance_after: i64,
        pub at: ChronoDateTimeUtc,
        pub reference: String,
        pub rules_version: i32,
    }

    quanyu_runtime::no_relations!();
}

pub mod sales {
    use sea_orm::entity::prelude::*;

    /// Every sale and refund recorded, by its key, kept for good: its idempotency record (the
    /// digest of the sale, the answer it got) and what its refunds need.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sales")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub source: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        /// `quanyu_runtime::idempotency::RequestDigest::to_bytes` of the sale.
        pub request_digest: Vec<u8>,
        /// The encoded `SaleResult` it got.
        pub response: Vec<u8>,
        pub is_refund: bool,
        /// The account it went to; none for a non-member's sale.
        pub member_id: Option<String>,
        pub program_id: Option<String>,
        /// The spend points were earned on, and what refunds have taken back.
        pub eligible_minor: i64,
        pub points_earned: i64,
        pub growth: i64,
        pub refunded_minor: i64,
        pub points_reversed: i64,
        pub recorded_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod aliases {
    use sea_orm::entity::prelude::*;

    /// Members merged into another (from member-identity's MembersMerged): their id now means
    /// the survivor's.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_aliases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub survivor_id: String,
        pub merged_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

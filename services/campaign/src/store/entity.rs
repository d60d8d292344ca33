//! sea-orm entities of the campaign schema, keyed by `tenant_id` first.

pub mod coupon_templates {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "coupon_templates")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub template_id: String,
        /// The encoded `quanyu.campaign.v1.CouponTemplate`, as created.
        pub definition: Vec<u8>,
        pub stock: i64,
        pub issued: i64,
        pub per_member_limit: i64,
        pub created_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod coupons {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "coupons")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub coupon_id: String,
        pub code: String,
        pub template_id: String,
        pub member_id: String,
        pub origin: String,
        pub state: String,
        pub issued_at: ChronoDateTimeUtc,
        pub valid_from: ChronoDateTimeUtc,
        pub valid_until: ChronoDateTimeUtc,
        pub order_source: String,
        pub order_id: String,
        pub redeemed_at: Option<ChronoDateTimeUtc>,
        pub void_reason: String,
    }

    quanyu_runtime::no_relations!();
}

pub mod code_pool {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "code_pool")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub template_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub position: i64,
        pub code: String,
    }

    quanyu_runtime::no_relations!();
}

pub mod redemptions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "redemptions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_source: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        pub amount_minor: i64,
        pub currency: String,
        pub refunded_minor: i64,
        pub restored: bool,
        pub redeemed_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod merged_members {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "merged_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub survivor_id: String,
    }

    quanyu_runtime::no_relations!();
}

pub mod campaigns {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaigns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        /// The encoded `quanyu.campaign.v1.Campaign`, as created.
        pub definition: Vec<u8>,
        pub kind: String,
        pub state: String,
        pub starts_at: ChronoDateTimeUtc,
        pub ends_at: ChronoDateTimeUtc,
        pub budget_limit: i64,
        pub spent: i64,
        pub created_at: ChronoDateTimeUtc,
        pub started_at: Option<ChronoDateTimeUtc>,
    }

    quanyu_runtime::no_relations!();
}

pub mod rewards {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rewards")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub occurrence: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub day: String,
        /// GIVEN, or why not (BUDGET_SPENT, OUT_OF_STOCK…).
        pub outcome: String,
        pub points: i64,
        pub revoked: i64,
        pub coupon_id: String,
        pub sale_amount_minor: i64,
        pub created_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod point_grants {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "point_grants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub grant_key: String,
        pub campaign_id: String,
        pub member_id: String,
        pub program_id: String,
        /// Positive: a grant; negative: a revocation of the grant `reference` names.
        pub points: i64,
        pub reference: String,
        /// PENDING until loyalty-points applied it (DONE) or refused it for good (FAILED).
        pub state: String,
        pub attempts: i32,
        pub error: String,
        pub created_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod drops {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "drops")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        pub audience_members: i64,
        pub listed: i64,
        pub last_member_id: String,
        pub done: bool,
        pub started_at: ChronoDateTimeUtc,
        pub finished_at: Option<ChronoDateTimeUtc>,
    }

    quanyu_runtime::no_relations!();
}

pub mod invite_codes {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invite_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub code: String,
        pub created_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod referrals {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "referrals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub invitee_id: String,
        pub inviter_id: String,
        pub state: String,
        pub enrolled_at: ChronoDateTimeUtc,
        pub attributed_at: ChronoDateTimeUtc,
        pub qualified_order: String,
        pub qualified_amount_minor: i64,
        pub refunded_minor: i64,
        pub qualified_at: Option<ChronoDateTimeUtc>,
    }

    quanyu_runtime::no_relations!();
}

pub mod referral_tasks {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "referral_tasks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub inviter_id: String,
        pub invitees: i64,
        pub qualified: i64,
        pub rungs_paid: i64,
    }

    quanyu_runtime::no_relations!();
}

pub mod member_enrolments {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_enrolments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub enrolled_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod assist_tasks {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "assist_tasks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub campaign_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub assists: i64,
        pub started_at: ChronoDateTimeUtc,
        pub expires_at: ChronoDateTimeUtc,
        pub completed_at: Option<ChronoDateTimeUtc>,
    }

    quanyu_runtime::no_relations!();
}

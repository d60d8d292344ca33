//! sea-orm entities of the member-identity schema. Every table is keyed by `tenant_id` first.

pub mod tenants {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub display_name: String,
        pub created_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod brands {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "brands")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub display_name: String,
        pub created_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod members {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `active`, `merged` or `erased`.
        pub status: String,
        pub merged_into: Option<String>,
        pub name: String,
        pub gender: String,
        /// YYYY-MM-DD.
        pub birthday: Option<String>,
        pub province: String,
        pub city: String,
        pub life_stage: String,
        /// JSON object of custom attributes.
        pub attributes: String,
        pub channel: String,
        pub brand_id: String,
        pub store_id: String,
        pub guide_id: String,
        pub referral_code: String,
        pub enrolled_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod identities {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub namespace: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub value: String,
        /// Always an active member: merges move identities, erasure deletes them.
        pub member_id: String,
        /// For the phone digests kept beside a phone: the E.164 phone they derive from.
        pub derived_from: Option<String>,
        pub linked_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod tag_definitions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tag_definitions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub kind: String,
        /// JSON array of the values an enum tag allows.
        pub allowed_values: String,
        pub description: String,
        pub created_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod member_tags {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_tags")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tag_name: String,
        pub value: String,
        pub tagged_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

pub mod consents {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub channel: String,
        pub granted: bool,
        pub decided_at: ChronoDateTimeUtc,
        pub source: String,
    }

    quanyu_runtime::no_relations!();
}

pub mod guide_bindings {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "guide_bindings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub member_id: String,
        pub store_id: String,
        pub guide_id: String,
        pub source: String,
        pub bound_at: ChronoDateTimeUtc,
        pub unbound_at: Option<ChronoDateTimeUtc>,
    }

    quanyu_runtime::no_relations!();
}

pub mod audit_entries {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_entries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        /// UUIDv7: ordered by time.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub actor: String,
        pub action: String,
        pub member_id: String,
        /// JSON array of the names of what changed, never values.
        pub changed: String,
        pub occurred_at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

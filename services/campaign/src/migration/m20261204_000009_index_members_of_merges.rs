//! Indexes for what merges and referrals look up by member: without them SQLite (which has no
//! statistics) read every row of the tenant, and each merge or referral grew slower as members
//! grew.

use quanyu_runtime::db::schema::index;
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261204_000009_index_members_of_merges"
    }
}

/// Name, table and columns of each index added.
const ADDED: [(&str, &str, &[&str]); 3] = [
    (
        "merged_members_by_survivor",
        "merged_members",
        &["tenant_id", "survivor_id"],
    ),
    (
        "coupon_holdings_by_member",
        "coupon_holdings",
        &["tenant_id", "member_id"],
    ),
    // Covers a member's keys: SQLite preferred the primary key, which covers them too, over the
    // index this replaces, and read the whole tenant.
    (
        "member_identity_keys_by_member_key",
        "member_identity_keys",
        &["tenant_id", "member_id", "identity_key"],
    ),
];

/// The index the covering one replaces.
const REPLACED: (&str, &str, &[&str]) = (
    "member_identity_keys_by_member",
    "member_identity_keys",
    &["tenant_id", "member_id"],
);

fn index_drop(name: &'static str, table: &'static str) -> IndexDropStatement {
    Index::drop().name(name).table(table).if_exists().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns) in ADDED {
            manager.create_index(index(name, table, columns)).await?;
        }
        let (name, table, _) = REPLACED;
        manager.drop_index(index_drop(name, table)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let (name, table, columns) = REPLACED;
        manager.create_index(index(name, table, columns)).await?;
        for (name, table, _) in ADDED {
            manager.drop_index(index_drop(name, table)).await?;
        }
        Ok(())
    }
}

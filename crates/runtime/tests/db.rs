//! The database engine on both backends: writes combined or sent from arrays land whole, lookups
//! by key find exactly their rows, transactions that lost a race are retried and others are not.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use quanyu_runtime::db::{TUNING, Writes, begin_write, find_by_keys, with_retries};
use quanyu_testkit::TestDatabase;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryTrait, TransactionTrait};
use sea_orm_migration::prelude::*;

quanyu_testkit::database_suite!(
    inserts_and_updates_land_whole_whatever_their_number,
    rows_with_a_null_cell_land_without_arrays,
    small_writes_to_several_rows_go_together,
    large_writes_are_sent_while_the_rest_is_built,
    keys_find_exactly_their_rows_in_scope,
    transient_failures_are_retried_and_others_are_not,
);

mod items {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: i64,
        pub note: Option<String>,
        pub at: ChronoDateTimeUtc,
    }

    quanyu_runtime::no_relations!();
}

struct CreateItems;

impl MigrationName for CreateItems {
    fn name(&self) -> &str {
        "m20261203_000001_create_items"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateItems {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = vec![
            ColumnDef::new("tenant_id").string().not_null().to_owned(),
            ColumnDef::new("key").string().not_null().to_owned(),
            ColumnDef::new("value").big_integer().not_null().to_owned(),
            ColumnDef::new("note").string().null().to_owned(),
            ColumnDef::new("at").timestamp_with_time_zone().not_null().to_owned(),
        ];
        let table = quanyu_runtime::db::schema::table("items", columns, &["tenant_id", "key"]);
        manager.create_table(table).await
    }
}

struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateItems)]
    }
}

async fn connect(database: &TestDatabase) -> DatabaseConnection {
    quanyu_runtime::db::connect::<Migrator>(&database.config(), "db_test")
        .await
        .unwrap()
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T10:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn item(tenant: &str, key: impl Into<String>, value: i64, note: Option<&str>) -> items::ActiveModel {
    items::ActiveModel {
        tenant_id: Set(tenant.to_owned()),
        key: Set(key.into()),
        value: Set(value),
        note: Set(note.map(str::to_owned)),
        at: Set(at()),
    }
}

async fn all(db: &DatabaseConnection, tenant: &str) -> Vec<items::Model> {
    let mut rows = items::Entity::find()
        .filter(items::Column::TenantId.eq(tenant))
        .all(db)
        .await
        .unwrap();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    rows
}

async fn write(db: &DatabaseConnection, build: impl FnOnce(&mut Writes)) {
    let txn = begin_write(db).await.unwrap();
    let mut writes = Writes::new(&txn);
    build(&mut writes);
    writes.execute(&txn).await.unwrap();
    txn.commit().await.unwrap();
}

async fn inserts_and_updates_land_whole_whatever_their_number(database: TestDatabase) {
    let db = connect(&database).await;
    // Below and at the cut-over to arrays, and past SQLite's limit on one statement's parameters.
    let past_sqlite_limit = TUNING.sqlite_max_parameters / 5 + 1;
    for count in [
        1,
        TUNING.arrays_from_rows - 1,
        TUNING.arrays_from_rows,
        past_sqlite_limit,
    ] {
        let tenant = format!("t{count}");
        let rows: Vec<items::ActiveModel> = (0..count)
            .map(|n| {
                item(
                    &tenant,
                    format!("{n:05}"),
                    <i64 as TryFrom<usize>>::try_from(n).unwrap(),
                    Some("x"),
                )
            })
            .collect();
        write(&db, |writes| writes.insert_many(rows, None)).await;
        let stored = all(&db, &tenant).await;
        assert_eq!(stored.len(), count, "{count} rows inserted");
        assert!(
            stored
                .iter()
                .all(|row| row.note.as_deref() == Some("x") && row.at == at())
        );

        let doubled: Vec<items::ActiveModel> = stored
            .iter()
            .map(|row| item(&row.tenant_id, row.key.clone(), row.value * 2, None))
            .collect();
        write(&db, |writes| writes.update_many(doubled)).await;
        let updated = all(&db, &tenant).await;
        assert_eq!(updated.len(), count, "updates insert nothing");
        for (before, after) in stored.iter().zip(&updated) {
            assert_eq!(after.value, before.value * 2, "{count} rows: {}", before.key);
            assert_eq!(after.note, None);
        }
    }
}

async fn rows_with_a_null_cell_land_without_arrays(database: TestDatabase) {
    let db = connect(&database).await;
    let count = TUNING.arrays_from_rows * 2;
    let rows: Vec<items::ActiveModel> = (0..count)
        .map(|n| item("acme", format!("{n:03}"), 1, (n % 3 != 0).then_some("kept")))
        .collect();
    write(&db, |writes| writes.insert_many(rows, None)).await;
    let stored = all(&db, "acme").await;
    assert_eq!(stored.len(), count);
    let nulls = stored.iter().filter(|row| row.note.is_none()).count();
    assert_eq!(nulls, count.div_ceil(3));
}

async fn small_writes_to_several_rows_go_together(database: TestDatabase) {
    let db = connect(&database).await;
    write(&db, |writes| {
        writes.insert_many(vec![item("acme", "a", 1, None), item("acme", "b", 2, None)], None)
    })
    .await;
    // An insert, an update of another row and an upsert: one statement on PostgreSQL.
    write(&db, |writes| {
        writes.insert_many(vec![item("acme", "c", 3, Some("new"))], None);
        let raise = items::Entity::update_many()
            .col_expr(items::Column::Value, Expr::value(20))
            .filter(items::Column::TenantId.eq("acme"))
            .filter(items::Column::Key.eq("b"));
        writes.push(raise.into_query());
        writes.update_many(vec![item("acme", "a", 1, Some("noted"))]);
    })
    .await;
    let stored: Vec<(String, i64, Option<String>)> = all(&db, "acme")
        .await
        .into_iter()
        .map(|row| (row.key, row.value, row.note))
        .collect();
    assert_eq!(
        stored,
        vec![
            ("a".into(), 1, Some("noted".into())),
            ("b".into(), 20, None),
            ("c".into(), 3, Some("new".into())),
        ]
    );
}

async fn large_writes_are_sent_while_the_rest_is_built(database: TestDatabase) {
    let db = connect(&database).await;
    let txn = begin_write(&db).await.unwrap();
    let mut writes = Writes::new(&txn);
    let many: Vec<items::ActiveModel> = (0..500)
        .map(|n| item("acme", format!("many-{n:03}"), n, None))
        .collect();
    writes.insert_many(many, None);
    writes
        .execute_while(&txn, |rest| {
            rest.insert_many(vec![item("acme", "last", 7, Some("built"))], None)
        })
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let stored = all(&db, "acme").await;
    assert_eq!(stored.len(), 501);
    assert_eq!(
        stored.iter().map(|row| row.value).sum::<i64>(),
        (0..500).sum::<i64>() + 7
    );
}

async fn keys_find_exactly_their_rows_in_scope(database: TestDatabase) {
    let db = connect(&database).await;
    let rows = ["acme", "globex"]
        .iter()
        .flat_map(|tenant| (0..100).map(move |n| item(tenant, format!("k{n}"), n, None)))
        .collect();
    write(&db, |writes| writes.insert_many(rows, None)).await;

    let wanted: Vec<String> = ["k1", "k50", "k99", "missing"].map(str::to_owned).to_vec();
    for lock in [false, true] {
        let txn = begin_write(&db).await.unwrap();
        let scope = [(items::Column::TenantId, "acme".into())];
        let mut found = find_by_keys::<items::Entity, _>(&txn, &scope, items::Column::Key, wanted.clone(), lock)
            .await
            .unwrap();
        txn.commit().await.unwrap();
        found.sort_by_key(|row| row.value);
        let found: Vec<(&str, &str, i64)> = found
            .iter()
            .map(|row| (row.tenant_id.as_str(), row.key.as_str(), row.value))
            .collect();
        assert_eq!(
            found,
            [("acme", "k1", 1), ("acme", "k50", 50), ("acme", "k99", 99)],
            "lock: {lock}"
        );
    }
    let none = find_by_keys::<items::Entity, _>(&db, &[], items::Column::Key, Vec::new(), false)
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn transient_failures_are_retried_and_others_are_not(database: TestDatabase) {
    let db = connect(&database).await;
    let insert = |key: &'static str| {
        let db = db.clone();
        async move {
            let txn = db.begin().await?;
            items::Entity::insert(item("acme", key, 1, None))
                .exec_without_returning(&txn)
                .await?;
            txn.commit().await
        }
    };
    insert("taken").await.unwrap();

    // A unique key taken by another transaction: retried, and the third attempt finds it free.
    let attempts = AtomicU32::new(0);
    let retried = with_retries(|| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        insert(if attempt < 2 { "taken" } else { "free" })
    })
    .await;
    assert!(retried.is_ok(), "{retried:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let attempts = AtomicU32::new(0);
    let refused: Result<(), DbErr> = with_retries(|| {
        attempts.fetch_add(1, Ordering::SeqCst);
        async { Err(DbErr::Custom("not a race".into())) }
    })
    .await;
    assert!(refused.is_err());
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "an error no retry can mend is returned at once"
    );
}

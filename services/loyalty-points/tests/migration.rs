//! Migrations: any number may start at once, and the one that moved lots and holds into the
//! account rows keeps every one of them.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use chrono::{DateTime, Utc};
use quanyu_loyalty_points::migration::Migrator;
use quanyu_loyalty_points::store::ledger_state;
use quanyu_runtime::service::Service as _;
use quanyu_testkit::TestDatabase;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sea_orm_migration::prelude::*;

quanyu_testkit::database_suite!(
    lots_and_holds_move_into_their_accounts,
    entries_keep_every_row_when_rekeyed,
    keys_compare_as_bytes,
    recorded_writes_move_to_sales_and_idempotency_records,
    many_processes_migrating_a_fresh_database_at_once_all_succeed
);

/// A first deploy: the migration Job and every replica start at once on a fresh database. Each
/// succeeds, and every migration is applied exactly once (on several fresh databases, as the
/// race is won or lost in milliseconds).
async fn many_processes_migrating_a_fresh_database_at_once_all_succeed(database: TestDatabase) {
    for _ in 0..4 {
        let fresh = TestDatabase::create(database.backend).await.unwrap();
        migrate_at_once(&fresh, 8).await;
    }
}

async fn migrate_at_once(database: &TestDatabase, processes: usize) {
    let config = database.config();
    let schema = quanyu_loyalty_points::LoyaltyPoints::SCHEMA;
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(processes));
    let starts: Vec<_> = (0..processes)
        .map(|_| {
            let (config, ready) = (config.clone(), ready.clone());
            tokio::spawn(async move {
                ready.wait().await;
                quanyu_runtime::db::connect::<Migrator>(&config, schema).await
            })
        })
        .collect();
    let mut connections = Vec::new();
    for start in starts {
        connections.push(start.await.unwrap().expect("every process migrates or finds it done"));
    }
    let applied = connections[0]
        .query_one_raw(Statement::from_string(
            connections[0].get_database_backend(),
            "SELECT count(*) AS count FROM loyalty_points_migrations",
        ))
        .await
        .unwrap()
        .unwrap();
    let applied: i64 = applied.try_get("", "count").unwrap();
    assert_eq!(usize::try_from(applied).unwrap(), Migrator::migrations().len());
}

/// Every migration before the one named.
fn migrations_before(name: &str) -> Vec<Box<dyn MigrationTrait>> {
    Migrator::migrations()
        .into_iter()
        .take_while(|migration| migration.name() != name)
        .collect()
}

/// How many migrations undo the one named and every one after it.
fn steps_back_through(name: &str) -> u32 {
    let after = Migrator::migrations().len() - migrations_before(name).len();
    <u32 as TryFrom<usize>>::try_from(after).unwrap()
}

/// The schema as it was before the move of lots and holds into accounts.
struct BeforeTheMove;

#[async_trait::async_trait]
impl MigratorTrait for BeforeTheMove {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations_before("m20261125_000001_ledger_in_accounts")
    }

    fn migration_table_name() -> DynIden {
        Migrator::migration_table_name()
    }
}

/// The schema as it was before entries were keyed by account.
struct BeforeTheRekey;

#[async_trait::async_trait]
impl MigratorTrait for BeforeTheRekey {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations_before("m20261127_000001_entries_keyed_by_account")
    }

    fn migration_table_name() -> DynIden {
        Migrator::migration_table_name()
    }
}

async fn run(db: &DatabaseConnection, sql: &str) {
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
}

async fn lots_and_holds_move_into_their_accounts(database: TestDatabase) {
    let config = database.config();
    let db = quanyu_runtime::db::connect::<BeforeTheMove>(&config, quanyu_loyalty_points::LoyaltyPoints::SCHEMA)
        .await
        .unwrap();
    let at = "2026-03-01 08:00:00+00:00";
    for member in ["ada", "bo"] {
        run(
            &db,
            &format!(
                "INSERT INTO accounts (tenant_id, program_id, member_id, balance, growth_period, growth_lifetime, \
                 growth_year, tier, next_id, updated_at) VALUES ('acme', 'club', '{member}', 150, 0, 0, 2026, \
                 'member', 3, '{at}')"
            ),
        )
        .await;
    }
    run(
        &db,
        &format!(
            "INSERT INTO lots (tenant_id, program_id, member_id, lot_id, earned_at, expires_at, original, remaining, \
             reference) VALUES ('acme', 'club', 'ada', 1, '{at}', '2027-03-01 08:00:00+00:00', 100, 100, 'pos:1'), \
             ('acme', 'club', 'ada', 2, '{at}', '2026-12-31 16:00:00+00:00', 80, 50, 'pos:2')"
        ),
    )
    .await;
    run(
        &db,
        "INSERT INTO holds (tenant_id, program_id, member_id, hold_id, amount, expires_at, reference) \
         VALUES ('acme', 'club', 'ada', 3, 40, '2026-03-01 08:15:00+00:00', 'till-7')",
    )
    .await;

    Migrator::up(&db, None).await.unwrap();

    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT member_id, ledger, next_due FROM accounts ORDER BY member_id",
        ))
        .await
        .unwrap();
    let ada = &rows[0];
    let ledger_state::LedgerState { lots, holds, .. } =
        ledger_state::decode(&ada.try_get::<Option<Vec<u8>>>("", "ledger").unwrap().unwrap()).unwrap();
    let remaining: Vec<(u64, i64, String)> = lots
        .iter()
        .map(|lot| (lot.id, lot.remaining, lot.reference.clone()))
        .collect();
    assert_eq!(remaining, vec![(1, 100, "pos:1".into()), (2, 50, "pos:2".into())]);
    assert_eq!(
        lots[1].expires_at,
        "2026-12-31T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(holds.len(), 1);
    assert_eq!(
        (holds[0].id, holds[0].amount, holds[0].reference.as_str()),
        (3, 40, "till-7")
    );
    let due: DateTime<Utc> = ada.try_get::<Option<DateTime<Utc>>>("", "next_due").unwrap().unwrap();
    assert_eq!(
        due,
        "2026-03-01T08:15:00Z".parse::<DateTime<Utc>>().unwrap(),
        "the hold lapses first"
    );
    let bo = &rows[1];
    assert_eq!(
        bo.try_get::<Option<Vec<u8>>>("", "ledger").unwrap(),
        None,
        "nothing to move"
    );
    let tables = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT * FROM lots"))
        .await;
    assert!(tables.is_err(), "the lots table is gone");
}

/// Every row `sql` returns, as a tuple of its columns.
async fn rows_of<T: sea_orm::TryGetableMany>(db: &DatabaseConnection, sql: &str) -> Vec<T> {
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter().map(|row| row.try_get_many_by_index().unwrap()).collect()
}

async fn entries_of(db: &DatabaseConnection) -> Vec<(String, String, i64)> {
    rows_of(db, "SELECT member_id, id, points FROM entries ORDER BY id").await
}

async fn entries_keep_every_row_when_rekeyed(database: TestDatabase) {
    let config = database.config();
    let db = quanyu_runtime::db::connect::<BeforeTheRekey>(&config, quanyu_loyalty_points::LoyaltyPoints::SCHEMA)
        .await
        .unwrap();
    for (member, id, points) in [("ada", "e-1", 100), ("ada", "e-2", -40), ("bo", "e-3", 7)] {
        run(
            &db,
            &format!(
                "INSERT INTO entries (tenant_id, id, program_id, member_id, kind, points, balance_after, at, \
                 reference, rules_version) VALUES ('acme', '{id}', 'club', '{member}', 'EARN', {points}, 0, \
                 '2026-03-01 08:00:00+00:00', 'pos:1', 1)"
            ),
        )
        .await;
    }
    let before = entries_of(&db).await;

    // This migration alone: a later one changes the result type of `entries_of` (a collation),
    // which a statement prepared before it cannot return.
    Migrator::up(&db, Some(1)).await.unwrap();
    assert_eq!(entries_of(&db).await, before, "every entry is kept");
    // The key is the account's now: the same id under another member is another entry.
    run(
        &db,
        "INSERT INTO entries (tenant_id, id, program_id, member_id, kind, points, balance_after, at, reference, \
         rules_version) VALUES ('acme', 'e-3', 'club', 'cy', 'EARN', 1, 1, '2026-03-02 08:00:00+00:00', 'pos:2', 1)",
    )
    .await;
    let twice = "INSERT INTO entries (tenant_id, id, program_id, member_id, kind, points, balance_after, at, \
                 reference, rules_version) VALUES ('acme', 'e-1', 'club', 'ada', 'EARN', 1, 1, \
                 '2026-03-02 08:00:00+00:00', 'pos:3', 1)";
    let duplicate = db
        .execute_raw(Statement::from_string(db.get_database_backend(), twice))
        .await;
    assert!(duplicate.is_err(), "an account's entry ids stay unique");
    run(&db, "DELETE FROM entries WHERE member_id = 'cy'").await;

    Migrator::down(&db, Some(1)).await.unwrap();
    assert_eq!(
        entries_of(&db).await,
        before,
        "and kept again when the migration is undone"
    );
}

/// The collation of each key column the migration changes, with its type, as PostgreSQL reports.
async fn key_collations(db: &DatabaseConnection) -> Vec<(String, String, String, Option<String>)> {
    let sql = "SELECT table_name::text, column_name::text, data_type::text, collation_name::text \
               FROM information_schema.columns WHERE table_schema = current_schema() \
               AND (table_name, column_name) IN (('accounts', 'member_id'), ('sales', 'key'), \
               ('entries', 'id'), ('member_aliases', 'member_id'), ('programs', 'brand_id')) \
               ORDER BY table_name";
    rows_of(db, sql).await
}

async fn keys_compare_as_bytes(database: TestDatabase) {
    let config = database.config();
    let db = quanyu_runtime::db::connect::<Migrator>(&config, quanyu_loyalty_points::LoyaltyPoints::SCHEMA)
        .await
        .unwrap();
    run(
        &db,
        "INSERT INTO entries (tenant_id, id, program_id, member_id, kind, points, balance_after, at, reference, \
         rules_version) VALUES ('acme', 'e-1', 'club', '会员-1', 'EARN', 100, 100, '2026-03-01 08:00:00+00:00', \
         'pos:1', 1)",
    )
    .await;
    let collation_and_after = steps_back_through("m20261128_000001_keys_in_code_point_order");
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        // SQLite compares bytes already: the migration changes nothing there, both ways.
        Migrator::down(&db, Some(collation_and_after)).await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(entries_of(&db).await.len(), 1);
        return;
    }
    let collated = key_collations(&db).await;
    assert_eq!(collated.len(), 5);
    for (table, column, data_type, collation) in &collated {
        assert_eq!(collation.as_deref(), Some("C"), "{table}.{column}");
        assert_eq!(data_type, "character varying", "{table}.{column} keeps its type");
    }

    Migrator::down(&db, Some(collation_and_after)).await.unwrap();
    for (table, column, _, collation) in key_collations(&db).await {
        assert_eq!(collation, None, "{table}.{column} is back on the database's collation");
    }
    assert_eq!(
        entries_of(&db).await,
        vec![("会员-1".to_owned(), "e-1".to_owned(), 100)],
        "rows are kept"
    );
}

/// The schema as it was before keyed writes moved to the idempotency table.
struct BeforeIdempotency;

#[async_trait::async_trait]
impl MigratorTrait for BeforeIdempotency {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations_before("m20261203_000001_create_idempotency")
    }

    fn migration_table_name() -> DynIden {
        Migrator::migration_table_name()
    }
}

async fn recorded_writes_move_to_sales_and_idempotency_records(database: TestDatabase) {
    use prost::Message;
    use quanyu_proto::points::v1 as pb;
    use quanyu_runtime::idempotency::RequestDigest;

    let config = database.config();
    let db = quanyu_runtime::db::connect::<BeforeIdempotency>(&config, quanyu_loyalty_points::LoyaltyPoints::SCHEMA)
        .await
        .unwrap();
    let sale = |key: &str, kind: pb::SaleKind| pb::Sale {
        source: "pos-1".into(),
        transaction_id: key.into(),
        kind: kind.into(),
        ..Default::default()
    };
    let bought = sale("t-1", pb::SaleKind::Sale);
    let answered = pb::SaleResult {
        points_earned: 100,
        ..Default::default()
    };
    let redeemed = pb::Balance {
        balance: 90,
        ..Default::default()
    };
    // (source, key, request, result, points earned)
    type Operation<'a> = (&'a str, &'a str, Vec<u8>, Vec<u8>, i64);
    let rows: [Operation; 3] = [
        ("pos-1", "t-1", bought.encode_to_vec(), answered.encode_to_vec(), 100),
        (
            "pos-1",
            "t-2",
            sale("t-2", pb::SaleKind::Refund).encode_to_vec(),
            Vec::new(),
            0,
        ),
        ("redeem", "k-1", b"\x08\x0a".to_vec(), redeemed.encode_to_vec(), 0),
    ];
    for (source, key, request, result, earned) in rows {
        let insert = Query::insert()
            .into_table("operations")
            .columns([
                "tenant_id",
                "source",
                "key",
                "request",
                "result",
                "member_id",
                "program_id",
                "eligible_minor",
                "points_earned",
                "refunded_minor",
                "points_reversed",
                "growth",
                "recorded_at",
            ])
            .values_panic([
                "acme".into(),
                source.into(),
                key.into(),
                request.into(),
                result.into(),
                "ada".into(),
                "club".into(),
                10_000i64.into(),
                earned.into(),
                0i64.into(),
                0i64.into(),
                100i64.into(),
                "2026-03-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap().into(),
            ])
            .to_owned();
        db.execute_raw(db.get_database_backend().build(&insert)).await.unwrap();
    }

    Migrator::up(&db, None).await.unwrap();

    // (key, is a refund, points earned, request digest, response)
    type Sale = (String, bool, i64, Vec<u8>, Vec<u8>);
    let sales: Vec<Sale> = rows_of(
        &db,
        "SELECT key, is_refund, points_earned, request_digest, response FROM sales ORDER BY key",
    )
    .await;
    let kept: Vec<(&str, bool, i64)> = sales
        .iter()
        .map(|(key, refund, earned, ..)| (key.as_str(), *refund, *earned))
        .collect();
    assert_eq!(kept, [("t-1", false, 100), ("t-2", true, 0)]);
    assert_eq!(
        sales[0].3,
        RequestDigest::of(&bought).to_bytes(),
        "the sale's digest, not the sale"
    );
    assert_eq!(sales[0].4, answered.encode_to_vec(), "and its answer");
    let records: Vec<(String, String, Vec<u8>)> =
        rows_of(&db, "SELECT scope, key, response FROM idempotency ORDER BY key").await;
    let scopes: Vec<(&str, &str)> = records
        .iter()
        .map(|(scope, key, _)| (scope.as_str(), key.as_str()))
        .collect();
    assert_eq!(scopes, [("redeem", "k-1")]);
    let redeem = pb::RedeemResponse::decode(records[0].2.as_slice()).unwrap();
    assert_eq!(
        redeem.balance.unwrap().balance,
        90,
        "the balance, as a redemption's response"
    );
    assert!(
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT * FROM operations"
        ))
        .await
        .is_err(),
        "the operations table is gone"
    );

    Migrator::down(&db, Some(steps_back_through("m20261203_000001_create_idempotency")))
        .await
        .unwrap();
    let operations: Vec<(String, String, Vec<u8>, i64)> = rows_of(
        &db,
        "SELECT source, key, result, points_earned FROM operations ORDER BY source, key",
    )
    .await;
    let kept: Vec<(&str, &str, i64)> = operations
        .iter()
        .map(|(source, key, _, earned)| (source.as_str(), key.as_str(), *earned))
        .collect();
    assert_eq!(kept, [("pos-1", "t-1", 100), ("pos-1", "t-2", 0), ("redeem", "k-1", 0)]);
    assert_eq!(operations[0].2, answered.encode_to_vec(), "a sale's answer comes back");
}

//! The migration that moved lots and holds into the account rows keeps every one of them.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use chrono::{DateTime, Utc};
use quanyu_loyalty_points::migration::Migrator;
use quanyu_loyalty_points::store::ledger_state;
use quanyu_testkit::TestDatabase;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use sea_orm_migration::prelude::*;

quanyu_testkit::database_suite!(lots_and_holds_move_into_their_accounts);

/// The schema as it was before the move: every migration before it.
struct BeforeTheMove;

#[async_trait::async_trait]
impl MigratorTrait for BeforeTheMove {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        Migrator::migrations()
            .into_iter()
            .take_while(|migration| migration.name() != "m20261125_000001_ledger_in_accounts")
            .collect()
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
    let db = quanyu_runtime::db::connect::<BeforeTheMove>(&config, quanyu_loyalty_points::SCHEMA)
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
    let (lots, holds) = ledger_state::decode(&ada.try_get::<Option<Vec<u8>>>("", "ledger").unwrap().unwrap()).unwrap();
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

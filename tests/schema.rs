//! The schemas on PostgreSQL as an operator meets them: migrating again changes nothing (a
//! rollout's Job and every replica migrate), and every table can be placed on a Citus cluster as
//! deploy/citus.sql places it: distributed by tenant where its keys include `tenant_id` (Citus's
//! rule for distributed tables), else declared a reference or coordinator-local table.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;

use quanyu_runtime::service::Declared;
use quanyu_testkit::{Backend, TestDatabase};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

const SERVICES: [&dyn Declared; 4] = [
    &quanyu_member_identity::SERVICE,
    &quanyu_loyalty_points::SERVICE,
    &quanyu_campaign::SERVICE,
    &quanyu_analytics::SERVICE,
];

const CITUS_SQL: &str = include_str!("../deploy/citus.sql");

/// The services' schemas, as an SQL list.
fn schemas() -> String {
    let quoted: Vec<String> = SERVICES
        .iter()
        .map(|service| format!("'{}'", service.schema()))
        .collect();
    quoted.join(", ")
}

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let statement = Statement::from_string(db.get_database_backend(), sql);
    db.query_all_raw(statement)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// Every column (with its type, default and nullability) and every index and constraint of the
/// services' schemas, one line each.
async fn catalog(db: &DatabaseConnection) -> Vec<String> {
    let schemas = schemas();
    let mut lines = strings(
        db,
        &format!(
            "SELECT concat_ws(' ', table_schema, table_name, column_name, data_type, is_nullable, column_default) \
             FROM information_schema.columns WHERE table_schema IN ({schemas}) ORDER BY 1"
        ),
    )
    .await;
    lines.extend(
        strings(
            db,
            &format!("SELECT indexdef FROM pg_indexes WHERE schemaname IN ({schemas}) ORDER BY 1"),
        )
        .await,
    );
    lines.extend(
        strings(
            db,
            &format!(
                "SELECT conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE connamespace::regnamespace::text IN ({schemas}) ORDER BY 1"
            ),
        )
        .await,
    );
    lines
}

/// The tables whose primary key and unique indexes all include `tenant_id`, and which have it.
async fn keyed_by_tenant(db: &DatabaseConnection) -> BTreeSet<String> {
    let sql = format!(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname IN ({}) \
         AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id') \
         AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique \
             AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) k JOIN pg_attribute a \
                 ON a.attrelid = c.oid AND a.attnum = k WHERE a.attname = 'tenant_id'))",
        schemas()
    );
    strings(db, &sql).await.into_iter().collect()
}

async fn tables(db: &DatabaseConnection) -> BTreeSet<String> {
    let sql = format!(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables \
         WHERE table_schema IN ({}) AND table_type = 'BASE TABLE'",
        schemas()
    );
    strings(db, &sql).await.into_iter().collect()
}

/// The tables deploy/citus.sql passes to `function`.
fn placed_by(function: &str) -> BTreeSet<String> {
    let call = format!("SELECT {function}('");
    CITUS_SQL
        .lines()
        .filter_map(|line| line.strip_prefix(call.as_str()))
        .map(|rest| rest.split('\'').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_again_changes_nothing_and_citus_sql_places_every_table() {
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let config = database.config();
    let configured: Vec<_> = SERVICES
        .iter()
        .map(|service| service.configure(None).unwrap())
        .collect();
    for service in &configured {
        service.migrate(&config).await.unwrap();
    }
    let db = Database::connect(config.url_for("public")).await.unwrap();
    let migrated = catalog(&db).await;
    assert!(migrated.len() > 100, "the catalog was read: {migrated:?}");
    for service in &configured {
        service.migrate(&config).await.unwrap();
    }
    assert_eq!(catalog(&db).await, migrated, "a second migration changed the schema");

    let distributed = placed_by("create_distributed_table");
    let declared: BTreeSet<String> = placed_by("create_reference_table")
        .into_iter()
        .chain(placed_by("citus_add_local_table_to_metadata"))
        .collect();
    assert!(
        distributed.is_disjoint(&declared),
        "placed twice: {:?}",
        distributed.intersection(&declared).collect::<Vec<_>>()
    );
    let keyed = keyed_by_tenant(&db).await;
    let not_keyed: Vec<&String> = distributed.difference(&keyed).collect();
    assert!(
        not_keyed.is_empty(),
        "distributed by tenant_id, but a key leaves it out (or it has none): {not_keyed:?}"
    );
    let all = tables(&db).await;
    let placed: BTreeSet<String> = distributed.union(&declared).cloned().collect();
    assert_eq!(
        all.difference(&placed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "tables deploy/citus.sql does not place"
    );
    assert_eq!(
        placed.difference(&all).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "deploy/citus.sql places tables the migrations do not make"
    );
}

//! The outbox, its Subscribe server and the consumer, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use quanyu_outbox::consumer::{Consumer, ConsumerConfig, EventHandler, cursor};
use quanyu_outbox::migration::{CreateCursors, CreateOutbox, CreatePendingEvents};
use quanyu_outbox::retention::{RetentionConfig, prune};
use quanyu_outbox::sequencer::sequence;
use quanyu_outbox::subscribe::{EventStream, StreamConfig};
use quanyu_outbox::{NewEvent, append, append_to};
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::events::v1::event_stream_service_client::EventStreamServiceClient;
use quanyu_proto::events::v1::event_stream_service_server::EventStreamServiceServer;
use quanyu_proto::events::v1::{AcknowledgeRequest, Event, SubscribeRequest, SubscribeResponse, subscribe_response};
use quanyu_proto::identity::v1::MemberErased;
use quanyu_runtime::auth::{Authenticator, BearerKey, KeyRing};
use quanyu_runtime::db::Writes;
use quanyu_runtime::server::{Server, ServerConfig};
use quanyu_runtime::shutdown::Shutdown;
use quanyu_testkit::{Backend, TestDatabase, keys};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, Statement, TransactionTrait};
use sea_orm_migration::prelude::*;
use tokio_stream::StreamExt as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

quanyu_testkit::database_suite!(
    committed_events_arrive_once_and_rolled_back_ones_never,
    positions_follow_commit_order,
    concurrent_sequencers_number_each_event_once,
    a_killed_consumer_resumes_without_gap_or_duplicate,
    a_consumer_catches_up_after_the_producer_restarts,
    subscribers_see_only_their_tenant,
    retention_waits_for_registered_consumers_up_to_a_maximum,
    writes_sent_together_all_land,
);

struct TestMigrator;

struct CreateEffects;

impl MigrationName for CreateEffects {
    fn name(&self) -> &str {
        "m20261124_000099_create_test_effects"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateEffects {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No key on purpose: a duplicate effect would show as a second row.
        manager
            .create_table(
                Table::create()
                    .table("effects")
                    .if_not_exists()
                    .col(ColumnDef::new("position").big_integer().not_null())
                    .col(ColumnDef::new("tenant_id").string().not_null())
                    .to_owned(),
            )
            .await
    }
}

#[async_trait::async_trait]
impl MigratorTrait for TestMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateOutbox),
            Box::new(CreatePendingEvents),
            Box::new(CreateCursors),
            Box::new(CreateEffects),
        ]
    }
}

async fn connect(database: &TestDatabase) -> DatabaseConnection {
    quanyu_runtime::db::connect::<TestMigrator>(&database.config(), "outbox_test")
        .await
        .unwrap()
}

fn erased(tenant: &str, member: &str) -> NewEvent {
    NewEvent {
        tenant_id: tenant.into(),
        aggregate_type: "member",
        aggregate_id: member.into(),
        payload: Payload::MemberErased(MemberErased {
            member_id: member.into(),
        }),
    }
}

async fn append_committed(db: &DatabaseConnection, events: Vec<NewEvent>) {
    let txn = db.begin().await.unwrap();
    append(&txn, events).await.unwrap();
    txn.commit().await.unwrap();
}

struct Producer {
    addr: SocketAddr,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
}

impl Producer {
    async fn start(db: &DatabaseConnection, addr: Option<SocketAddr>) -> Producer {
        let keys = Arc::new(KeyRing::from_config(&quanyu_testkit::auth_config()).unwrap());
        let config = StreamConfig {
            poll_interval_ms: 20,
            heartbeat_interval_ms: 200,
            batch_size: 100,
        };
        let events = EventStreamServiceServer::new(EventStream::new(db.clone(), config));
        let service = Server {
            name: "outbox-test",
            grpc_names: vec!["quanyu.events.v1.EventStreamService"],
            routes: tonic::service::Routes::new(InterceptedService::new(events, Authenticator::new(keys))),
            database: db.clone(),
        };
        let listener = tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server_config = ServerConfig {
            shutdown_grace_secs: 1,
            ..ServerConfig::default()
        };
        let stopping = shutdown.clone();
        let server = tokio::spawn(async move {
            quanyu_runtime::server::serve(listener, service, &server_config, stopping)
                .await
                .unwrap();
        });
        Producer { addr, shutdown, server }
    }

    async fn stop(self) {
        self.shutdown.trigger();
        self.server.await.unwrap();
    }

    async fn client(&self, key: &str) -> EventStreamServiceClient<InterceptedService<Channel, BearerKey>> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        EventStreamServiceClient::with_interceptor(channel, BearerKey::new(key).unwrap())
    }
}

/// The next `count` events of a tailing subscription, as (position, aggregate id).
async fn next_events(stream: &mut tonic::Streaming<SubscribeResponse>, count: usize) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(subscribe_response::Item::Event(event)) = item.item {
            seen.push((event.position, event.aggregate_id));
        }
    }
    seen
}

/// Subscribes and collects events until the first heartbeat says the backlog is exhausted.
async fn backlog(producer: &Producer, key: &str, request: SubscribeRequest) -> Result<Vec<Event>, tonic::Status> {
    let mut stream = producer.client(key).await.subscribe(request).await?.into_inner();
    let mut events = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()?;
        match item.item.unwrap() {
            subscribe_response::Item::Event(event) => events.push(event),
            subscribe_response::Item::Heartbeat(_) => return Ok(events),
        }
    }
}

fn positions(events: &[Event]) -> Vec<u64> {
    events.iter().map(|event| event.position).collect()
}

async fn committed_events_arrive_once_and_rolled_back_ones_never(database: TestDatabase) {
    let db = connect(&database).await;
    append_committed(&db, vec![erased("acme", "m1"), erased("acme", "m2")]).await;
    let rolled_back = db.begin().await.unwrap();
    append(&rolled_back, vec![erased("acme", "never")]).await.unwrap();
    rolled_back.rollback().await.unwrap();
    append_committed(&db, vec![erased("acme", "m3")]).await;

    let producer = Producer::start(&db, None).await;
    let events = backlog(&producer, keys::SERVICE, SubscribeRequest::default())
        .await
        .unwrap();
    assert_eq!(
        positions(&events),
        vec![1, 2, 3],
        "a rollback returns its positions: no gap"
    );
    let members: Vec<&str> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(members, vec!["m1", "m2", "m3"]);
    assert_eq!(events[0].event_type, "identity.MemberErased");
    assert!(matches!(&events[2].payload, Some(Payload::MemberErased(erased)) if erased.member_id == "m3"));

    let after = backlog(
        &producer,
        keys::SERVICE,
        SubscribeRequest {
            after_position: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(positions(&after), vec![3]);
    producer.stop().await;
}

async fn positions_follow_commit_order(database: TestDatabase) {
    let db = connect(&database).await;
    let producer = Producer::start(&db, None).await;
    let mut stream = producer
        .client(keys::SERVICE)
        .await
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    // T1 appends first and commits last.
    let first = db.begin().await.unwrap();
    append(&first, vec![erased("acme", "t1")]).await.unwrap();
    let second_db = db.clone();
    let second = tokio::spawn(async move { append_committed(&second_db, vec![erased("acme", "t2")]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    if database.backend == Backend::Postgres {
        // Writers share no lock: T2 commits while T1 is open, and the tail sees it at once.
        assert!(second.is_finished(), "the second writer does not wait for the first");
        assert_eq!(next_events(&mut stream, 1).await, vec![(1, "t2".to_owned())]);
        first.commit().await.unwrap();
        assert_eq!(
            next_events(&mut stream, 1).await,
            vec![(2, "t1".to_owned())],
            "the late commit comes after, never skipped"
        );
    } else {
        // SQLite has one writer: T2 waits for T1 to commit.
        assert!(!second.is_finished(), "the second writer waits for the first");
        first.commit().await.unwrap();
        let seen = next_events(&mut stream, 2).await;
        assert_eq!(seen, vec![(1, "t1".to_owned()), (2, "t2".to_owned())]);
    }
    second.await.unwrap();
    producer.stop().await;
}

async fn concurrent_sequencers_number_each_event_once(database: TestDatabase) {
    let db = connect(&database).await;
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let db = db.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    let events = (0..4).map(|k| erased("acme", &format!("w{writer}-{n}-{k}"))).collect();
                    append_committed(&db, events).await;
                }
            })
        })
        .collect();
    let sequencers: Vec<_> = (0..3)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut numbered = 0;
                for _ in 0..40 {
                    numbered += sequence(&db).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                numbered
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut numbered = sequence(&db).await.unwrap();
    for sequencer in sequencers {
        numbered += sequencer.await.unwrap();
    }
    assert_eq!(numbered, 400, "each event numbered by exactly one sequencer");
    let producer = Producer::start(&db, None).await;
    let events = backlog(&producer, keys::SERVICE, SubscribeRequest::default())
        .await
        .unwrap();
    assert_eq!(positions(&events), (1..=400).collect::<Vec<u64>>());
    let mut members: Vec<&str> = events.iter().map(|event| event.aggregate_id.as_str()).collect();
    members.sort_unstable();
    members.dedup();
    assert_eq!(members.len(), 400, "no event twice");
    // Each writer's events keep the order in which it committed them.
    for writer in 0..4 {
        let own: Vec<&str> = events
            .iter()
            .map(|event| event.aggregate_id.as_str())
            .filter(|member| member.starts_with(&format!("w{writer}-")))
            .collect();
        let expected: Vec<String> = (0..25)
            .flat_map(|n| (0..4).map(move |k| format!("w{writer}-{n}-{k}")))
            .collect();
        assert_eq!(own, expected);
    }
    producer.stop().await;
}

/// Records each event's position as an effect, slowly, so that a consumer can be killed mid-way.
struct RecordEffect {
    pause: Duration,
}

#[async_trait::async_trait]
impl EventHandler for RecordEffect {
    async fn apply(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), DbErr> {
        tokio::time::sleep(self.pause).await;
        txn.execute_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            match txn.get_database_backend() {
                sea_orm::DbBackend::Postgres => "INSERT INTO effects (position, tenant_id) VALUES ($1, $2)",
                _ => "INSERT INTO effects (position, tenant_id) VALUES (?, ?)",
            },
            [(event.position as i64).into(), event.tenant_id.clone().into()],
        ))
        .await?;
        Ok(())
    }
}

fn consumer(db: &DatabaseConnection, producer_addr: SocketAddr, pause_ms: u64) -> Consumer<RecordEffect> {
    let config = ConsumerConfig {
        name: "effects".into(),
        endpoint: format!("http://{producer_addr}"),
        api_key: keys::SERVICE.into(),
        event_types: Vec::new(),
        acknowledge_every: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    };
    Consumer::new(
        config,
        db.clone(),
        RecordEffect {
            pause: Duration::from_millis(pause_ms),
        },
    )
}

async fn wait_for_cursor(db: &DatabaseConnection, at_least: u64) {
    for _ in 0..300 {
        if cursor(db, "effects").await.unwrap() >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the consumer did not reach position {at_least}");
}

async fn effects(db: &DatabaseConnection) -> (i64, i64) {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS total, COUNT(DISTINCT position) AS distinct_positions FROM effects WHERE position > 0",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "total").unwrap(),
        row.try_get("", "distinct_positions").unwrap(),
    )
}

async fn a_killed_consumer_resumes_without_gap_or_duplicate(database: TestDatabase) {
    let db = connect(&database).await;
    let producer = Producer::start(&db, None).await;
    // More events than one transaction applies, so that the consumer is killed between two.
    append_committed(&db, (0..500).map(|n| erased("acme", &format!("m{n}"))).collect()).await;

    let running = tokio::spawn(consumer(&db, producer.addr, 1).run(Shutdown::new()));
    wait_for_cursor(&db, 1).await;
    running.abort();
    let _ = running.await;
    // One statement, one snapshot: a commit the killed task had already sent may still land
    // between two reads.
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT (SELECT position FROM outbox_cursors WHERE consumer = 'effects') AS stopped_at, \
             (SELECT COUNT(*) FROM effects WHERE position > 0) AS applied",
        ))
        .await
        .unwrap()
        .unwrap();
    let stopped_at: i64 = row.try_get("", "stopped_at").unwrap();
    assert!(stopped_at < 500, "killed mid-stream, at {stopped_at}");
    assert_eq!(
        row.try_get::<i64>("", "applied").unwrap(),
        stopped_at,
        "effects and cursor move together"
    );

    append_committed(&db, (500..1000).map(|n| erased("acme", &format!("m{n}"))).collect()).await;
    let shutdown = Shutdown::new();
    let resumed = tokio::spawn(consumer(&db, producer.addr, 0).run(shutdown.clone()));
    wait_for_cursor(&db, 1000).await;
    shutdown.trigger();
    resumed.await.unwrap();
    assert_eq!(effects(&db).await, (1000, 1000), "every event applied exactly once");
    producer.stop().await;
}

async fn a_consumer_catches_up_after_the_producer_restarts(database: TestDatabase) {
    let db = connect(&database).await;
    let producer = Producer::start(&db, None).await;
    let addr = producer.addr;
    append_committed(&db, vec![erased("acme", "before")]).await;
    let shutdown = Shutdown::new();
    let running = tokio::spawn(consumer(&db, addr, 0).run(shutdown.clone()));
    wait_for_cursor(&db, 1).await;

    producer.stop().await;
    append_committed(&db, (0..10).map(|n| erased("globex", &format!("down{n}"))).collect()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = Producer::start(&db, Some(addr)).await;
    wait_for_cursor(&db, 11).await;
    assert_eq!(effects(&db).await, (11, 11));
    shutdown.trigger();
    running.await.unwrap();
    restarted.stop().await;
}

async fn subscribers_see_only_their_tenant(database: TestDatabase) {
    let db = connect(&database).await;
    append_committed(
        &db,
        vec![erased("acme", "a1"), erased("globex", "g1"), erased("acme", "a2")],
    )
    .await;
    let producer = Producer::start(&db, None).await;
    let tenants = |events: &[Event]| events.iter().map(|e| e.tenant_id.clone()).collect::<Vec<_>>();

    let own = backlog(&producer, keys::ACME_PLATFORM, SubscribeRequest::default())
        .await
        .unwrap();
    assert_eq!(tenants(&own), vec!["acme", "acme"]);
    let analyst = backlog(&producer, keys::ACME_ANALYST, SubscribeRequest::default())
        .await
        .unwrap();
    assert_eq!(positions(&analyst), vec![1, 3]);
    let all = backlog(&producer, keys::SERVICE, SubscribeRequest::default())
        .await
        .unwrap();
    assert_eq!(tenants(&all), vec!["acme", "globex", "acme"]);
    let one = backlog(
        &producer,
        keys::SERVICE,
        SubscribeRequest {
            tenant_id: "globex".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(positions(&one), vec![2]);

    let denied = backlog(
        &producer,
        keys::ACME_PLATFORM,
        SubscribeRequest {
            tenant_id: "globex".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let pos = backlog(&producer, keys::ACME_POS, SubscribeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(pos.code(), tonic::Code::PermissionDenied);
    let bad = backlog(
        &producer,
        keys::SERVICE,
        SubscribeRequest {
            consumer: "Bad Name".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let filtered = backlog(
        &producer,
        keys::SERVICE,
        SubscribeRequest {
            event_types: vec!["identity.MembersMerged".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(filtered.is_empty());
    producer.stop().await;
}

async fn retention_waits_for_registered_consumers_up_to_a_maximum(database: TestDatabase) {
    let db = connect(&database).await;
    append_committed(&db, (1..=5).map(|n| erased("acme", &format!("m{n}"))).collect()).await;
    assert_eq!(sequence(&db).await.unwrap(), 5);
    let age = |days: i64, up_to: i64| {
        let at = (Utc::now() - chrono::Duration::days(days)).to_rfc3339();
        let sql = format!("UPDATE outbox_events SET occurred_at = '{at}' WHERE position <= {up_to}");
        Statement::from_string(db.get_database_backend(), sql)
    };
    db.execute_raw(age(10, 4)).await.unwrap();
    let producer = Producer::start(&db, None).await;
    producer
        .client(keys::SERVICE)
        .await
        .acknowledge(AcknowledgeRequest {
            consumer: "slow".into(),
            position: 2,
        })
        .await
        .unwrap();
    let config = RetentionConfig {
        retention_hours: 7 * 24,
        max_retention_hours: 30 * 24,
        prune_interval_secs: 60,
    };
    assert_eq!(
        prune(&db, &config, Utc::now()).await.unwrap(),
        2,
        "old and passed by every consumer"
    );
    let left = backlog(&producer, keys::SERVICE, SubscribeRequest::default())
        .await
        .unwrap();
    assert_eq!(positions(&left), vec![3, 4, 5]);

    db.execute_raw(age(40, 3)).await.unwrap();
    assert_eq!(
        prune(&db, &config, Utc::now()).await.unwrap(),
        1,
        "beyond the maximum it goes regardless"
    );
    let left = backlog(&producer, keys::SERVICE, SubscribeRequest::default())
        .await
        .unwrap();
    assert_eq!(positions(&left), vec![4, 5]);
    producer.stop().await;
}

/// Writes sent together land whole: two appends in one statement, and ten thousand events a
/// write, more parameters than one PostgreSQL statement takes, one write after the other.
async fn writes_sent_together_all_land(database: TestDatabase) {
    let db = connect(&database).await;
    let events = |prefix: &str, count: usize| (0..count).map(|n| erased("acme", &format!("{prefix}-{n}"))).collect();
    for (label, count) in [("few", 3), ("many", 10_000)] {
        let txn = db.begin().await.unwrap();
        let mut writes = Writes::new(&txn);
        append_to(&mut writes, events(&format!("{label}-a"), count));
        append_to(&mut writes, events(&format!("{label}-b"), count));
        writes.execute(&txn).await.unwrap();
        txn.commit().await.unwrap();
    }
    assert_eq!(sequence(&db).await.unwrap(), 20_006);
    let producer = Producer::start(&db, None).await;
    let read = backlog(&producer, keys::SERVICE, SubscribeRequest::default())
        .await
        .unwrap();
    let mut members: Vec<&str> = read.iter().map(|event| event.aggregate_id.as_str()).collect();
    members.sort_unstable();
    members.dedup();
    assert_eq!(members.len(), 20_006, "every event once");
    producer.stop().await;
}

//! What every Quanyu server guarantees, checked on a running suite: graceful shutdown that turns
//! health NOT_SERVING first, the request size limit, deadlines, and small, precise refusals of
//! hostile input.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use quanyu_proto::identity::v1 as pb;
use quanyu_testkit::{Backend, Sandbox, keys};
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const IDENTITY_SERVICE: &str = "quanyu.identity.v1.MemberIdentityService";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_serving_before_the_server_stops() {
    let suite = Sandbox::suite(Backend::Sqlite).await.unwrap();
    let mut health = HealthClient::new(suite.identity_channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: IDENTITY_SERVICE.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );

    suite.shutdown().trigger();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap();
    assert_eq!(next.unwrap().unwrap().status, ServingStatus::NotServing as i32);
    tokio::time::timeout(Duration::from_secs(10), suite.stop())
        .await
        .expect("the server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_four_mebibytes_are_refused() {
    let suite = Sandbox::suite(Backend::Sqlite).await.unwrap();
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let huge = pb::Identity {
        kind: pb::IdentityKind::External.into(),
        value: "x".repeat(5 * 1024),
        namespace: "crm".into(),
    };
    let status = client
        .resolve_identities(pb::ResolveIdentitiesRequest {
            identities: vec![huge; 1000],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    let small = pb::Identity {
        value: "x".into(),
        ..Default::default()
    };
    let within = client
        .resolve_identities(pb::ResolveIdentitiesRequest {
            identities: vec![small],
        })
        .await;
    assert!(within.is_ok(), "{within:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_deadline_is_honoured() {
    let suite = Sandbox::suite(Backend::Sqlite).await.unwrap();
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    // A call that takes many milliseconds: a listing of no members could be answered before the
    // server's timer first fires, and the deadline would never be checked.
    let identities = (0..1_000)
        .map(|n| pb::Identity {
            kind: pb::IdentityKind::Phone.into(),
            value: format!("1380013{n:04}"),
            namespace: String::new(),
        })
        .collect();
    let mut request = tonic::Request::new(pb::ResolveIdentitiesRequest { identities });
    request.set_timeout(Duration::from_nanos(1));
    let status = client.resolve_identities(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
}

/// The health of `service` on `channel` (`""` for the whole server, `liveness`).
async fn health_of(channel: tonic::transport::Channel, service: &str) -> i32 {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map_or(-1, |answer| answer.into_inner().status)
}

/// Polls until `service` reports `wanted`, for at most five seconds.
async fn wait_for_health(channel: &tonic::transport::Channel, service: &str, wanted: ServingStatus) {
    for _ in 0..100 {
        if health_of(channel.clone(), service).await == wanted as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service:?} never became {wanted:?}");
}

fn resolve_one(phone: &str, timeout: Duration) -> tonic::Request<pb::ResolveIdentitiesRequest> {
    let mut request = tonic::Request::new(pb::ResolveIdentitiesRequest {
        identities: vec![pb::Identity {
            kind: pb::IdentityKind::Phone.into(),
            value: phone.into(),
            namespace: String::new(),
        }],
    });
    request.set_timeout(timeout);
    request
}

/// PostgreSQL behind a link the test breaks. Reset: calls are UNAVAILABLE at once. Stalled: a
/// call is DEADLINE_EXCEEDED within its caller's deadline. Either way readiness turns NOT_SERVING
/// while liveness stays SERVING, and both recover as soon as the link heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_unavailable_and_not_ready_until_it_heals() {
    let Some(suite) = Sandbox::builder(Backend::Postgres)
        .service(&quanyu_member_identity::SERVICE, "")
        .database_through_link()
        .start()
        .await
    else {
        return;
    };
    let channel = suite.identity_channel().await;
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let deadline = Duration::from_millis(800);
    client
        .resolve_identities(resolve_one("13800138000", deadline))
        .await
        .unwrap();
    wait_for_health(&channel, "", ServingStatus::Serving).await;

    let link = suite.database_link();
    let breaks: [(&dyn Fn(), Code); 2] = [
        (&|| link.reset(), Code::Unavailable),
        (&|| link.stall(), Code::DeadlineExceeded),
    ];
    for (break_link, expected) in breaks {
        break_link();
        let started = std::time::Instant::now();
        let status = client
            .resolve_identities(resolve_one("13800138000", deadline))
            .await
            .unwrap_err();
        assert_eq!(status.code(), expected, "{status:?}");
        assert!(
            started.elapsed() < deadline,
            "within the caller's deadline: {:?}",
            started.elapsed()
        );
        wait_for_health(&channel, IDENTITY_SERVICE, ServingStatus::NotServing).await;
        wait_for_health(&channel, "", ServingStatus::NotServing).await;
        assert_eq!(
            health_of(channel.clone(), "liveness").await,
            ServingStatus::Serving as i32
        );

        link.restore();
        wait_for_health(&channel, "", ServingStatus::Serving).await;
        client
            .resolve_identities(resolve_one("13800138000", deadline))
            .await
            .unwrap();
    }
}

/// The services that reflection lists on `channel`, asked in one version of the reflection
/// protocol (`v1` or `v1alpha`: the same messages in two packages).
macro_rules! listed_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
        let request = tonic_reflection::pb::$version::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(listed)) =
            answers.next().await.unwrap().unwrap().message_response
        else {
            panic!("reflection {} did not list services", stringify!($version));
        };
        let mut names: Vec<String> = listed.service.into_iter().map(|service| service.name).collect();
        names.sort();
        names
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_exactly_the_services_of_each_port_in_v1_and_v1alpha() {
    let suite = Sandbox::suite(Backend::Sqlite).await.unwrap();
    let common = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "quanyu.events.v1.EventStreamService",
    ];
    let expected = |own: &str| {
        let mut names: Vec<String> = common.iter().copied().chain([own]).map(str::to_owned).collect();
        names.sort();
        names
    };
    let (identity, points) = (expected(IDENTITY_SERVICE), expected("quanyu.points.v1.PointsService"));
    assert_eq!(listed_services!(v1, suite.identity_channel().await), identity);
    assert_eq!(listed_services!(v1alpha, suite.identity_channel().await), identity);
    assert_eq!(listed_services!(v1, suite.points_channel().await), points);
    assert_eq!(listed_services!(v1alpha, suite.points_channel().await), points);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_starts_any_set_of_services() {
    let sandbox = Sandbox::start(Backend::Sqlite, &[&quanyu_member_identity::SERVICE])
        .await
        .unwrap();
    let mut health = HealthClient::new(sandbox.identity_channel().await);
    let status = health
        .check(HealthCheckRequest {
            service: IDENTITY_SERVICE.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    assert_eq!(sandbox.running(), ["member-identity"]);
}

/// A ResolveIdentitiesRequest as bytes: each identity is whatever bytes the test puts there.
#[derive(Clone, PartialEq, prost::Message)]
struct RawResolve {
    #[prost(bytes = "vec", repeated, tag = "1")]
    identities: Vec<Vec<u8>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_do_not_decode_are_invalid_argument() {
    let suite = Sandbox::suite(Backend::Sqlite).await.unwrap();
    let bearer = quanyu_runtime::auth::BearerKey::new(keys::ACME_PLATFORM).unwrap();
    let channel = tonic::service::interceptor::InterceptedService::new(suite.identity_channel().await, bearer);
    let mut grpc = tonic::client::Grpc::new(channel);
    let path = "/quanyu.identity.v1.MemberIdentityService/ResolveIdentities";
    // kind = PHONE, then field 2 (`value`, a string) holding bytes that are not UTF-8.
    let not_utf8 = vec![0x08, 0x01, 0x12, 0x02, 0xff, 0xfe];
    // A field header promising 100 bytes where 2 follow.
    let truncated = vec![0x12, 0x64, 0x31, 0x32];
    for identity in [not_utf8, truncated] {
        grpc.ready().await.unwrap();
        let status = grpc
            .unary::<_, pb::ResolveIdentitiesResponse, _>(
                tonic::Request::new(RawResolve {
                    identities: vec![identity],
                }),
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("does not decode"), "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_quotes_a_short_prefix_of_what_it_refuses() {
    let suite = Sandbox::suite(Backend::Sqlite).await.unwrap();
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let long_phone = "1".repeat(5_000);
    let status = client
        .enroll_member(pb::EnrollMemberRequest {
            identities: vec![pb::Identity {
                kind: pb::IdentityKind::Phone.into(),
                value: long_phone,
                namespace: String::new(),
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let sent = status.message().len() + status.details().len();
    assert!(sent < 2_048, "{sent} bytes: {status:?}");
    let details = tonic_types::StatusExt::get_error_details(&status);
    let violations = &details.bad_request().unwrap().field_violations;
    let violation = violations
        .iter()
        .find(|violation| violation.field == "identities[0].value")
        .unwrap_or_else(|| panic!("{violations:?}"));
    assert!(
        violation.description.contains("(5000 characters)"),
        "{}",
        violation.description
    );
}

/// A call waiting on a database that another transaction holds is DEADLINE_EXCEEDED within its
/// caller's deadline, and commits nothing.
async fn a_call_blocked_by_the_database_ends_at_its_deadline(backend: Backend) {
    let Some(suite) = Sandbox::start(backend, &[&quanyu_member_identity::SERVICE]).await else {
        return;
    };
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let holder = suite.database("member_identity").await;
    let holding = sea_orm::TransactionTrait::begin(&holder).await.unwrap();
    let hold = match backend {
        Backend::Sqlite => "INSERT INTO audit_entries SELECT * FROM audit_entries WHERE 1 = 0",
        Backend::Postgres => "LOCK TABLE identities IN ACCESS EXCLUSIVE MODE",
    };
    sea_orm::ConnectionTrait::execute_unprepared(&holding, hold)
        .await
        .unwrap();
    // Two seconds: the server answers a tenth of the deadline early (at most 200 ms). With one
    // second, its 100 ms were overrun once on a loaded 2-core machine, and the client gave up
    // first.
    let deadline = Duration::from_secs(2);
    let mut request = tonic::Request::new(pb::EnrollMemberRequest {
        identities: vec![pb::Identity {
            kind: pb::IdentityKind::Phone.into(),
            value: "13600136000".into(),
            namespace: String::new(),
        }],
        ..Default::default()
    });
    request.set_timeout(deadline);
    let started = std::time::Instant::now();
    let status = client.enroll_member(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    holding.rollback().await.unwrap();
    let resolved = client
        .resolve_identities(resolve_one("13600136000", Duration::from_secs(5)))
        .await
        .unwrap()
        .into_inner();
    assert!(
        resolved.resolutions[0].member_id.is_empty(),
        "nothing was enrolled: {resolved:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_blocked_by_sqlite_ends_at_its_deadline() {
    a_call_blocked_by_the_database_ends_at_its_deadline(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_blocked_by_postgres_ends_at_its_deadline() {
    a_call_blocked_by_the_database_ends_at_its_deadline(Backend::Postgres).await;
}

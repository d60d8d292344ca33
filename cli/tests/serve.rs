//! The `quanyu` binary as a newcomer meets it: `quanyu serve` on the bundled development
//! configuration, reached by a plain gRPC client through health, reflection and the demo keys.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;

use quanyu_proto::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use quanyu_proto::identity::v1 as pb;
use quanyu_proto::identity::v1::member_identity_service_client::MemberIdentityServiceClient;
use quanyu_proto::points::v1 as points_pb;
use quanyu_proto::points::v1::points_service_client::PointsServiceClient;
use quanyu_runtime::auth::BearerKey;
use tokio_stream::StreamExt as _;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

mod support;

use support::{connect, quanyu};

#[tokio::test]
async fn serve_on_the_development_config_is_reachable_by_any_grpc_client() {
    let mut server = support::serve();
    let (grpc_port, metrics_port) = (server.ports.identity, server.ports.metrics);
    let (analytics_port, campaign_port) = (server.ports.analytics, server.ports.campaign);
    let channel = connect(grpc_port).await;

    let mut health = HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "quanyu.identity.v1.MemberIdentityService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(listed)) = responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("reflection did not list services");
    };
    let names: Vec<String> = listed.service.into_iter().map(|service| service.name).collect();
    assert!(
        names.contains(&"quanyu.identity.v1.MemberIdentityService".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");

    let key = BearerKey::new("dev-demo-platform").unwrap();
    let mut client = MemberIdentityServiceClient::with_interceptor(channel.clone(), key.clone());
    let enroll = |value: &str| pb::EnrollMemberRequest {
        identities: vec![pb::Identity {
            kind: pb::IdentityKind::Phone.into(),
            value: value.into(),
            namespace: String::new(),
        }],
        ..Default::default()
    };
    let first = client
        .enroll_member(enroll("13800138000"))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap();
    let second = client
        .enroll_member(enroll("13900139000"))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap();
    let resolved = client
        .resolve_identities(pb::ResolveIdentitiesRequest {
            identities: enroll("+86 139 0013 9000").identities,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.resolutions[0].member_id, second.member_id);
    let merged = client
        .merge_members(pb::MergeMembersRequest {
            member_id: first.member_id.clone(),
            other_member_id: second.member_id.clone(),
            survivor_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(merged.survivor.unwrap().identities.len(), 2);
    let erased = client
        .erase_member(pb::EraseMemberRequest {
            member_id: first.member_id.clone(),
            reason: "test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.member.unwrap().status, pb::MemberStatus::Erased as i32);

    // analytics reads identity's stream under `quanyu serve`: the enrolments count, the merged
    // member once.
    let analyst = BearerKey::new("dev-demo-analyst").unwrap();
    let mut analytics = AnalyticsServiceClient::with_interceptor(connect(analytics_port).await, analyst);
    let today = quanyu_testkit::analytics_day(0);
    let mut new_members = 0;
    for _ in 0..100 {
        let answer = analytics
            .get_metrics(quanyu_proto::analytics::v1::GetMetricsRequest {
                metrics: vec![quanyu_proto::analytics::v1::Metric::NewMembers as i32],
                start_date: today.clone(),
                end_date: today.clone(),
                filter: None,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        new_members = answer.values[0].numerator;
        if new_members == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(new_members, 1, "two enrolled, one merged into the other");

    let mut campaign_health = HealthClient::new(connect(campaign_port).await);
    let status = campaign_health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "quanyu.campaign.v1.CampaignService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        ServingStatus::Serving as i32,
        "campaign serves beside the others"
    );

    // Methods nobody serves, as a scanner would call them: all counted under one label.
    let mut raw = tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(channel, key));
    for attempt in 0..20 {
        raw.ready().await.unwrap();
        let path = format!("/quanyu.identity.v1.MemberIdentityService/Probe{attempt}");
        let status = raw
            .unary::<_, pb::ResolveIdentitiesResponse, _>(
                tonic::Request::new(pb::ResolveIdentitiesRequest::default()),
                tonic::codegen::http::uri::PathAndQuery::try_from(path).unwrap(),
                quanyu_proto::codec::ProtoCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }
    let metrics = http_get(metrics_port, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
    for expected in [
        "grpc_server_handled_total",
        "MergeMembers",
        "method=\"unknown\"",
        "code=\"OK\"",
        "code=\"UNIMPLEMENTED\"",
        "grpc_server_handling_seconds_bucket",
        "db_pool_connections",
        "db_pool_max_connections",
        "db_pool_waiting",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(metrics.contains(expected), "{expected} is missing:\n{metrics}");
    }
    assert!(!metrics.contains("Probe"), "unknown methods are not labels:\n{metrics}");
    assert!(!metrics.contains("code=\"0\""), "codes are named:\n{metrics}");
    assert!(!metrics.contains("quantile="), "latency is a histogram:\n{metrics}");
    let elsewhere = http_get(metrics_port, "/anything-else").await;
    assert!(elsewhere.starts_with("HTTP/1.0 404"), "{elsewhere}");

    // SIGTERM: health turns NOT_SERVING, in-flight calls finish, the process exits cleanly.
    let terminated = Command::new("kill")
        .arg("-TERM")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(terminated.success());
    let exit = tokio::task::spawn_blocking(move || server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn dump_config_layers_the_environment_and_redacts_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let output = quanyu(dir.path())
        .args(["serve", "--dump-config"])
        .env("QUANYU_DATABASE__URL", "postgres://quanyu:hunter2@db:5432/quanyu")
        .env("QUANYU_SERVER__REQUEST_TIMEOUT_SECS", "7")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let dumped = String::from_utf8(output.stdout).unwrap();
    assert!(dumped.contains("postgres://quanyu:***@db:5432/quanyu"), "{dumped}");
    assert!(!dumped.contains("hunter2"));
    assert!(dumped.contains("request_timeout_secs = 7"), "{dumped}");
}

/// What `quanyu serve` says on stderr when it refuses the configuration `toml`.
fn refused(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("quanyu.toml");
    std::fs::write(&file, toml).unwrap();
    let output = quanyu(dir.path())
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{toml} was accepted");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_configuration_is_refused_with_its_path() {
    let error = refused("[server]\nrequest_timeout_secs = \"soon\"\n");
    assert!(error.contains("server.request_timeout_secs"), "{error}");

    let error = refused("[[auth.api_keys]]\nid = \"k\"\nrole = \"pos\"\nsha256 = \"abc\"\n");
    assert!(
        error.contains("needs a tenant") && error.contains("64 hex digits"),
        "{error}"
    );
}

#[test]
fn migrate_brings_every_declared_service_up_to_date_or_the_one_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = quanyu(dir.path()).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8(output.stdout).unwrap();
    assert!(said.contains("member-identity: schema up to date"), "{said}");
    assert!(said.contains("loyalty-points: schema up to date"), "{said}");
    assert!(said.contains("analytics: schema up to date"), "{said}");
    assert!(said.contains("campaign: schema up to date"), "{said}");
    for schema in ["member_identity", "loyalty_points", "campaign", "analytics"] {
        assert!(dir.path().join(format!("data/{schema}.db")).exists(), "{schema}");
    }

    let only = quanyu(dir.path())
        .args(["migrate", "--only", "loyalty-points"])
        .output()
        .unwrap();
    let said = String::from_utf8(only.stdout).unwrap();
    assert_eq!(said.trim(), "loyalty-points: schema up to date");
}

#[test]
fn each_service_reads_its_own_section_and_an_unknown_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = quanyu(dir.path())
        .args(["serve", "--dump-config"])
        .env("QUANYU_LOYALTY_POINTS__SALES_WRITERS", "3")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let dumped: toml::Table = String::from_utf8(output.stdout).unwrap().parse().unwrap();
    assert_eq!(dumped["loyalty_points"]["sales_writers"].as_integer(), Some(3));
    assert_eq!(dumped["member_identity"]["default_region"].as_str(), Some("CN"));

    let error = refused("[loyalty_point]\nsales_writers = 3\n");
    assert!(error.contains("`loyalty_point`: unknown section"), "{error}");
}

/// Personal data the test below sends, none of which may reach the logs.
const PHONE: &str = "13912345678";
const NAME: &str = "张三丰";
const EMAIL: &str = "zhang.san@example.com";
const BAD_EMAIL: &str = "li.si@@example.com";

/// What deploy/ builds on, on a served suite after a small demo, an enrolment with a name and an
/// email, a refused one and a rejected sale: every metric in deploy/metrics.txt (those the alerts
/// and dashboards read, deploy/check.py) is exported, and the logs, JSON as in production, hold
/// none of the phones, names or emails sent.
#[tokio::test]
async fn a_served_suite_exports_what_dashboards_read_and_logs_no_personal_data() {
    let server = support::serve();
    let key = BearerKey::new("dev-demo-platform").unwrap();
    let mut identity = MemberIdentityServiceClient::with_interceptor(connect(server.ports.identity).await, key.clone());
    let identity_of = |kind: pb::IdentityKind, value: &str| pb::Identity {
        kind: kind.into(),
        value: value.into(),
        namespace: String::new(),
    };
    let enrol = |email: &str| pb::EnrollMemberRequest {
        identities: vec![
            identity_of(pb::IdentityKind::Phone, PHONE),
            identity_of(pb::IdentityKind::Email, email),
        ],
        profile: Some(pb::Profile {
            name: NAME.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    identity.enroll_member(enrol(EMAIL)).await.unwrap();
    let refused = identity.enroll_member(enrol(BAD_EMAIL)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    run_demo(&server, 20).await;

    let mut points = PointsServiceClient::with_interceptor(connect(server.ports.points).await, key);
    let unkind = points_pb::Sale {
        source: "pos".into(),
        transaction_id: "t-unkind".into(),
        ..Default::default()
    };
    let answered = points
        .record_sales(points_pb::RecordSalesRequest { sales: vec![unkind] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered.results[0].outcome(), points_pb::SaleOutcome::Rejected);

    let wanted: Vec<&str> = include_str!("../../deploy/metrics.txt").split_whitespace().collect();
    let mut missing = wanted.clone();
    for _ in 0..50 {
        let scraped = http_get(server.ports.metrics, "/metrics").await;
        let exported: std::collections::BTreeSet<&str> = scraped
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split(['{', ' ']).next())
            .collect();
        missing = wanted.iter().copied().filter(|name| !exported.contains(name)).collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        missing.is_empty(),
        "deploy/metrics.txt names what is not exported: {missing:?}"
    );

    let logs = std::fs::read_to_string(server.dir.path().join(support::LOG)).unwrap();
    // Beside the development keys printed at start, the log is JSON, a line an event.
    let events = logs.lines().filter(|line| line.starts_with('{')).count();
    assert!(events > 10, "JSON lines: {logs}");
    for personal in [PHONE, NAME, EMAIL, BAD_EMAIL] {
        assert!(!logs.contains(personal), "the logs hold {personal}");
    }
    assert_eq!(
        phone_numbers("to +8613912345678, trace 4f13912345678a, 12345678901 or 13912345678."),
        ["8613912345678", "13912345678"],
        "the detector finds phones and passes over hex ids and other numbers"
    );
    let phones = phone_numbers(&logs);
    assert!(phones.is_empty(), "the logs hold phone numbers: {phones:?}");
}

/// Runs a small `quanyu demo` of `members` against `server`, once every service listens: every
/// service called, every stream read.
async fn run_demo(server: &support::Server, members: u32) {
    let ports = &server.ports;
    for port in [ports.identity, ports.points, ports.campaign, ports.analytics] {
        connect(port).await;
    }
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let demo = quanyu(server.dir.path())
        .args(["demo", "--members", &members.to_string(), "--days", "14"])
        .args([
            "--identity",
            &url(server.ports.identity),
            "--points",
            &url(server.ports.points),
        ])
        .args([
            "--campaign",
            &url(server.ports.campaign),
            "--analytics",
            &url(server.ports.analytics),
        ])
        .output()
        .unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
}

/// An OTLP trace collector in the test: keeps every span exported to it.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.0.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// One trace across services: a RecordSales call whose buyer is known by phone makes a call to
/// member-identity, and that call's server span is in the RecordSales call's trace, a
/// descendant of it.
#[tokio::test]
async fn a_sale_and_the_identity_call_it_makes_are_one_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let server = support::serve_with(&[("QUANYU_TELEMETRY__OTLP_ENDPOINT", &otlp)]);
    run_demo(&server, 10).await;

    let is_sale = |span: &Span| span.name == "/quanyu.points.v1.PointsService/RecordSales";
    let is_identity = |span: &Span| span.name.starts_with("/quanyu.identity.v1.MemberIdentityService/");
    let mut joined = None;
    for _ in 0..100 {
        let spans = collector.0.lock().unwrap().clone();
        joined = spans.iter().filter(|span| is_sale(span)).find_map(|sale| {
            spans
                .iter()
                .find(|span| is_identity(span) && span.trace_id == sale.trace_id)
                .map(|identity| (sale.clone(), identity.clone(), spans.clone()))
        });
        if joined.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (sale, identity, spans) = joined.expect("an identity call in the trace of a RecordSales call");
    // Up from the identity call's server span, through the client call, to the sale's.
    let mut ancestor = identity.parent_span_id.clone();
    let mut steps = 0;
    while ancestor != sale.span_id {
        let parent = spans
            .iter()
            .find(|span| span.span_id == ancestor)
            .unwrap_or_else(|| panic!("{} is not under RecordSales' span", identity.name));
        ancestor = parent.parent_span_id.clone();
        steps += 1;
        assert!(steps < 20, "a cycle of parents");
    }
}

/// Mainland mobile numbers in `text` (11 digits from 13 to 19, or with 86 before them) that
/// stand alone, not inside a longer run of hex digits such as a trace id.
fn phone_numbers(text: &str) -> Vec<&str> {
    text.split(|character: char| !character.is_ascii_hexdigit())
        .filter(|run| run.bytes().all(|byte| byte.is_ascii_digit()))
        .filter(|run| {
            let national = match run.len() {
                11 => *run,
                13 if run.starts_with("86") => &run[2..],
                _ => return false,
            };
            national.starts_with('1') && matches!(national.as_bytes()[1], b'3'..=b'9')
        })
        .collect()
}

/// The whole HTTP/1.0 answer (status line, headers, body) to a GET of `path`.
async fn http_get(port: u16, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.0\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        answer
    })
    .await
    .unwrap()
}

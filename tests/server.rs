//! What every Quanyu server guarantees, checked on a running suite: graceful shutdown that turns
//! health NOT_SERVING first, the request size limit, and deadlines.

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
    let mut request = tonic::Request::new(pb::ListMembersRequest::default());
    request.set_timeout(Duration::from_nanos(1));
    let status = client.list_members(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
}

/// The services that reflection lists on `channel`, asked in reflection v1 or v1alpha.
async fn listed_services(channel: tonic::transport::Channel, v1alpha: bool) -> Vec<String> {
    use tonic_reflection::pb::{v1, v1alpha as alpha};
    let mut names: Vec<String> = if v1alpha {
        let request = alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut client = alpha::server_reflection_client::ServerReflectionClient::new(channel);
        let mut answers = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        match answers.next().await.unwrap().unwrap().message_response {
            Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(listed)) => {
                listed.service.into_iter().map(|service| service.name).collect()
            }
            other => panic!("reflection v1alpha did not list services: {other:?}"),
        }
    } else {
        let request = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel);
        let mut answers = client
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        match answers.next().await.unwrap().unwrap().message_response {
            Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(listed)) => {
                listed.service.into_iter().map(|service| service.name).collect()
            }
            other => panic!("reflection v1 did not list services: {other:?}"),
        }
    };
    names.sort();
    names
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
    for v1alpha in [false, true] {
        assert_eq!(
            listed_services(suite.identity_channel().await, v1alpha).await,
            expected(IDENTITY_SERVICE),
            "member-identity, v1alpha: {v1alpha}"
        );
        assert_eq!(
            listed_services(suite.points_channel().await, v1alpha).await,
            expected("quanyu.points.v1.PointsService"),
            "loyalty-points, v1alpha: {v1alpha}"
        );
    }
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

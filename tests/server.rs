//! What every Quanyu server guarantees, checked on a running suite: graceful shutdown that turns
//! health NOT_SERVING first, the request size limit, and deadlines.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use quanyu_proto::identity::v1 as pb;
use quanyu_testkit::{Backend, Suite, keys};
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const IDENTITY_SERVICE: &str = "quanyu.identity.v1.MemberIdentityService";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_serving_before_the_server_stops() {
    let suite = Suite::start(Backend::Sqlite).await.unwrap();
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
    let suite = Suite::start(Backend::Sqlite).await.unwrap();
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
    let suite = Suite::start(Backend::Sqlite).await.unwrap();
    let mut client = suite.identity(keys::ACME_PLATFORM).await;
    let mut request = tonic::Request::new(pb::ListMembersRequest::default());
    request.set_timeout(Duration::from_nanos(1));
    let status = client.list_members(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
}

//! Coupon drops broken off and run twice at once, on SQLite and PostgreSQL, with an audience
//! the test lists (analytics' part is tested over gRPC in grpc.rs).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Mutex;

use quanyu_campaign::app::audiences::{AudienceSource, Batches};
use quanyu_campaign::app::{campaigns, drops, templates};
use quanyu_campaign::domain::campaign::Audience;
use quanyu_campaign::error::CampaignError;
use quanyu_proto::analytics::v1::{AudienceSelector, audience_selector};
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::clock::{Clock, to_proto};
use quanyu_runtime::service::Service as _;
use quanyu_runtime::shutdown::Shutdown;
use quanyu_testkit::TestDatabase;
use sea_orm::DatabaseConnection;

quanyu_testkit::database_suite!(
    a_drop_broken_off_goes_on_after_the_last_batch_it_committed,
    two_runners_of_one_drop_reward_each_member_once
);

const TENANT: &str = "acme";

/// An audience of `members`, listed `batch` at a time; with `breaks_after`, the listing fails
/// after that many batches (analytics went away, the pod was killed).
struct Listed {
    members: Vec<String>,
    batch: usize,
    breaks_after: Option<usize>,
    /// The `after` of each listing asked for.
    asked_after: Mutex<Vec<String>>,
}

impl Listed {
    fn new(count: usize, breaks_after: Option<usize>) -> Self {
        Self {
            members: (0..count).map(|n| format!("m-{n:05}")).collect(),
            batch: 100,
            breaks_after,
            asked_after: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait::async_trait]
impl AudienceSource for Listed {
    async fn count(&self, _: &str, _: &Audience) -> Result<i64, CampaignError> {
        Ok(i64::try_from(self.members.len()).unwrap())
    }

    async fn list(&self, _: &str, _: &Audience, (after, _): (&str, i32)) -> Result<Batches, CampaignError> {
        self.asked_after.lock().unwrap().push(after.to_owned());
        let rest: Vec<String> = self.members.iter().filter(|m| m.as_str() > after).cloned().collect();
        let mut batches: Vec<Result<Vec<String>, CampaignError>> =
            rest.chunks(self.batch).map(|chunk| Ok(chunk.to_vec())).collect();
        if let Some(kept) = self.breaks_after {
            batches.truncate(kept);
            let gone = tonic::Status::unavailable("analytics went away");
            batches.push(Err(CampaignError::Analytics(gone)));
        }
        Ok(Box::pin(tokio_stream::iter(batches)))
    }

    async fn matching(&self, _: &str, _: &Audience, member_ids: &[String]) -> Result<Vec<String>, CampaignError> {
        Ok(member_ids.to_vec())
    }
}

/// A database with a coupon template and an active drop of it to an audience, in stock.
async fn active_drop(database: &TestDatabase, source: &Listed) -> DatabaseConnection {
    let schema = quanyu_campaign::Campaign::SCHEMA;
    let db = quanyu_runtime::db::connect::<quanyu_campaign::migration::Migrator>(&database.config(), schema)
        .await
        .unwrap();
    let now = Clock::default().now();
    let template = pb::CouponTemplate {
        template_id: "ten-off".into(),
        name: "10 off".into(),
        kind: pb::CouponKind::AmountOff.into(),
        amount_off: quanyu_testkit::points::cny(1_000),
        valid_days: 30,
        ..Default::default()
    };
    templates::create(&db, TENANT, template, now).await.unwrap();
    let drop = pb::Campaign {
        campaign_id: "drop".into(),
        name: "Drop".into(),
        kind: pb::CampaignKind::CouponDrop.into(),
        starts_at: Some(to_proto(now - chrono::Duration::days(1))),
        ends_at: Some(to_proto(now + chrono::Duration::days(30))),
        reward: Some(pb::Reward {
            coupon_template_id: "ten-off".into(),
            ..Default::default()
        }),
        audience: Some(AudienceSelector {
            audience: Some(audience_selector::Audience::Name("everyone".into())),
        }),
        ..Default::default()
    };
    campaigns::create((&db, source), TENANT, drop, now).await.unwrap();
    campaigns::change(&db, TENANT, "drop", pb::CampaignState::Scheduled, now)
        .await
        .unwrap();
    db
}

async fn run(db: &DatabaseConnection, source: &Listed) -> Result<(), CampaignError> {
    drops::run(db, source, (TENANT, "drop"), &Clock::default(), &Shutdown::new()).await
}

async fn outcome(db: &DatabaseConnection) -> pb::GetCampaignRunResponse {
    campaigns::run(db, TENANT, "drop").await.unwrap()
}

async fn a_drop_broken_off_goes_on_after_the_last_batch_it_committed(database: TestDatabase) {
    let broken = Listed::new(250, Some(2));
    let db = active_drop(&database, &broken).await;
    let error = run(&db, &broken).await.unwrap_err();
    assert!(matches!(error, CampaignError::Analytics(_)), "{error}");
    let halfway = outcome(&db).await;
    let progress = halfway.drop.unwrap();
    assert_eq!((progress.listed, progress.done), (200, false));
    assert_eq!(progress.audience_members, 250);
    assert_eq!((halfway.rewards, halfway.coupons_issued), (200, 200));

    let whole = Listed::new(250, None);
    run(&db, &whole).await.unwrap();
    assert_eq!(
        *whole.asked_after.lock().unwrap(),
        ["m-00199"],
        "it goes on after the last batch"
    );
    let done = outcome(&db).await;
    let progress = done.drop.unwrap();
    assert_eq!((progress.listed, progress.done), (250, true));
    assert_eq!((done.rewards, done.coupons_issued, done.members), (250, 250, 250));

    run(&db, &whole).await.unwrap();
    assert_eq!(outcome(&db).await.rewards, 250, "a done drop gives nothing more");
}

async fn two_runners_of_one_drop_reward_each_member_once(database: TestDatabase) {
    let (first, second) = (Listed::new(1_000, None), Listed::new(1_000, None));
    let db = active_drop(&database, &first).await;
    let (one, other) = tokio::join!(run(&db, &first), run(&db, &second));
    one.unwrap();
    other.unwrap();
    let done = outcome(&db).await;
    let progress = done.drop.unwrap();
    assert_eq!((progress.listed, progress.done), (1_000, true));
    assert_eq!((done.rewards, done.coupons_issued, done.members), (1_000, 1_000, 1_000));
}

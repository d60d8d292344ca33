//! Writing prepared sales, with concurrent calls sharing transactions.
//!
//! A till sends one sale per call. Written alone, each sale pays a transaction's fixed costs
//! (begin, account locks, commit and its WAL flush), and tills crediting one member queue on its
//! row one sale at a time. Here the calls that arrive while the writers are busy are written
//! together by the next free writer, up to the batch limit and within one tenant: an idle service
//! makes no call wait, a busy one carries many sales per transaction. Nothing else changes: each
//! sale is answered on its own and applied once (a key twice among the calls is a duplicate, as
//! it would be one after the other), and a shared transaction that fails is not anyone's answer:
//! each call is then written alone, so one call's error never becomes another's.
//!
//! A call of more than [`TUNING.shared_up_to`](quanyu_runtime::db::Tuning::shared_up_to) sales (an upload's batch) fills most of a transaction by
//! itself: it is written at once in its own, beside the shared ones, up to `batch_writers` such
//! calls at a time. Several uploads then keep both the service and the database busy: one
//! batch's statements run while the next batch is being applied.

use std::sync::Arc;

use quanyu_proto::points::v1 as pb;
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::clock::Clock;
use quanyu_runtime::db::{TUNING, with_retries};
use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, Semaphore, mpsc, oneshot};

use super::sales::{PreparedSale, SaleKeys, answers, write_batch};
use crate::domain::program::Programs;
use crate::error::PointsError;
use quanyu_runtime::idempotency::Record;

/// The most sales one transaction carries: RecordSales' own limit.
pub const MAX_BATCH: usize = 1000;

/// Calls waiting for a writer before new ones wait to be queued.
const QUEUE_DEPTH: usize = 4096;

type Answer = Result<Vec<pb::SaleResult>, PointsError>;

struct Call {
    actor: TenantActor,
    programs: Arc<Programs>,
    sales: Vec<PreparedSale>,
    /// What was recorded under the call's keys when it was prepared, if it was read.
    recorded: Option<SaleKeys<Record>>,
    answer: oneshot::Sender<Answer>,
}

/// Hands small calls to a fixed number of writer tasks, and writes large ones at once.
pub struct SalesWriter {
    queue: mpsc::Sender<Call>,
    db: DatabaseConnection,
    clock: Clock,
    /// A permit for each large call that may be written at once.
    batch_permits: Semaphore,
}

impl SalesWriter {
    /// Starts `sales_writers` writer tasks, which stop when the writer is dropped; up to
    /// `batch_writers` large calls are written at once beside them.
    pub fn spawn(db: DatabaseConnection, clock: Clock, sales_writers: usize, batch_writers: usize) -> Self {
        let (queue, calls) = mpsc::channel(QUEUE_DEPTH);
        let calls = Arc::new(Mutex::new(calls));
        for _ in 0..sales_writers.max(1) {
            tokio::spawn(write_calls(db.clone(), clock.clone(), calls.clone()));
        }
        Self {
            queue,
            db,
            clock,
            batch_permits: Semaphore::new(batch_writers.max(1)),
        }
    }

    /// Writes one call's sales; the answers are in the order of `sales`.
    pub async fn write(
        &self,
        actor: &TenantActor,
        programs: Arc<Programs>,
        sales: Vec<PreparedSale>,
        recorded: Option<SaleKeys<Record>>,
    ) -> Answer {
        let stopped = || PointsError::Unavailable("loyalty-points is shutting down".into());
        if sales.len() > TUNING.shared_up_to {
            let _permit = self.batch_permits.acquire().await.map_err(|_| stopped())?;
            return write(&self.db, &self.clock, actor, &programs, sales, recorded).await;
        }
        let (answer, answered) = oneshot::channel();
        let call = Call {
            actor: actor.clone(),
            programs,
            sales,
            recorded,
            answer,
        };
        self.queue.send(call).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// One writer: takes the next call and every queued call that fits beside it, writes them.
async fn write_calls(db: DatabaseConnection, clock: Clock, calls: Arc<Mutex<mpsc::Receiver<Call>>>) {
    let mut held_over: Option<Call> = None;
    while let Some(together) = next_calls(&calls, &mut held_over).await {
        write_together(&db, &clock, together).await;
    }
}

/// The calls a writer writes next: the one it held over, else the next to arrive, with those
/// queued behind it of the same tenant while they fit in one transaction; the first that does not
/// fit is held over for this writer's next turn.
///
/// Only a writer without a held-over call waits for the queue: one holding a call while it waited
/// for another writer, itself waiting for new calls, would wait forever when every client is
/// waiting for the held call's answer.
async fn next_calls(calls: &Mutex<mpsc::Receiver<Call>>, held_over: &mut Option<Call>) -> Option<Vec<Call>> {
    let (first, mut queue) = match held_over.take() {
        Some(call) => match calls.try_lock() {
            Ok(queue) => (call, queue),
            Err(_) => return Some(vec![call]),
        },
        None => {
            let mut queue = calls.lock().await;
            (queue.recv().await?, queue)
        }
    };
    let mut size = first.sales.len();
    let mut together = vec![first];
    while let Ok(call) = queue.try_recv() {
        if call.actor.tenant_id != together[0].actor.tenant_id || size + call.sales.len() > MAX_BATCH {
            *held_over = Some(call);
            break;
        }
        size += call.sales.len();
        together.push(call);
    }
    Some(together)
}

async fn write_together(db: &DatabaseConnection, clock: &Clock, calls: Vec<Call>) {
    if calls.len() > 1 {
        let sales: Vec<PreparedSale> = calls.iter().flat_map(|call| call.sales.iter().cloned()).collect();
        // What the calls that read before found; the others' sales are for `write` to decide.
        let recorded = calls
            .iter()
            .filter_map(|call| call.recorded.clone())
            .reduce(|mut all, read| {
                all.extend(read);
                all
            });
        let newest = calls.last().map_or_else(Default::default, |call| call.programs.clone());
        match write(db, clock, &calls[0].actor, &newest, sales, recorded).await {
            Ok(mut results) => {
                for call in calls {
                    let rest = results.split_off(call.sales.len().min(results.len()));
                    let _ = call.answer.send(Ok(results));
                    results = rest;
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, calls = calls.len(), "shared sales transaction failed; writing each call alone")
            }
        }
    }
    for call in calls {
        let answer = write(db, clock, &call.actor, &call.programs, call.sales, call.recorded).await;
        let _ = call.answer.send(answer);
    }
}

/// Writes sales in one transaction, retried while it loses races. The first attempt takes as
/// recorded what the caller read under the sales' keys, if it did; else a few sales are taken
/// for new, since a till seldom sends a sale twice and a key recorded before fails the insert,
/// while many (an upload, often sent again) are looked up first. A retry reads again.
async fn write(
    db: &DatabaseConnection,
    clock: &Clock,
    actor: &TenantActor,
    programs: &Programs,
    sales: Vec<PreparedSale>,
    first_read: Option<SaleKeys<Record>>,
) -> Answer {
    metrics::histogram!("points_sales_per_transaction").record(sales.len() as f64);
    let mut first_read = first_read.or_else(|| (sales.len() <= TUNING.unread_up_to).then(SaleKeys::default));
    let sales = &sales;
    with_retries(|| {
        let known = first_read.take();
        async move {
            let recorded = match known {
                Some(recorded) => recorded,
                None => answers(db, &actor.tenant_id, &keys_of(sales)).await?,
            };
            write_batch(db, actor, programs, sales, recorded, clock.now()).await
        }
    })
    .await
}

fn keys_of(sales: &[PreparedSale]) -> Vec<(String, String)> {
    sales
        .iter()
        .map(|sale| (sale.source.clone(), sale.key.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quanyu_runtime::auth::TenantActor;

    use super::*;
    use crate::domain::sale::Plan;

    fn call(tenant: &str, sales: usize) -> Call {
        let sale = PreparedSale {
            index: 0,
            source: "pos".into(),
            key: "k".into(),
            sale: pb::Sale::default(),
            digest: quanyu_runtime::idempotency::RequestDigest::of(&pb::Sale::default()),
            plan: Plan::NonMember,
        };
        Call {
            actor: TenantActor {
                tenant_id: tenant.into(),
                key_id: "pos".into(),
            },
            programs: Arc::default(),
            sales: vec![sale; sales],
            recorded: None,
            answer: oneshot::channel().0,
        }
    }

    fn sizes(calls: &[Call]) -> Vec<usize> {
        calls.iter().map(|call| call.sales.len()).collect()
    }

    #[tokio::test]
    async fn calls_of_one_tenant_share_a_transaction_while_they_fit() {
        let (queue, calls) = mpsc::channel(8);
        let calls = Mutex::new(calls);
        for (tenant, sales) in [("acme", 600), ("acme", 300), ("acme", 200), ("globex", 1), ("acme", 1)] {
            queue.send(call(tenant, sales)).await.unwrap();
        }
        let mut held_over = None;
        let mut groups = Vec::new();
        for _ in 0..3 {
            groups.push(next_calls(&calls, &mut held_over).await.unwrap());
        }
        assert_eq!(sizes(&groups[0]), [600, 300]);
        assert_eq!(sizes(&groups[1]), [200]);
        assert_eq!(&*groups[2][0].actor.tenant_id, "globex");
        assert_eq!(sizes(held_over.as_slice()), [1]);
    }

    #[tokio::test]
    async fn a_held_over_call_is_written_while_another_writer_waits_for_new_ones() {
        let (queue, calls) = mpsc::channel(8);
        let calls = Arc::new(Mutex::new(calls));
        let waiting = tokio::spawn({
            let calls = calls.clone();
            async move { next_calls(&calls, &mut None).await.map(|calls| sizes(&calls)) }
        });
        // The other writer now holds the queue, waiting for a call.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut held_over = Some(call("acme", 1_000));
        let written = tokio::time::timeout(Duration::from_secs(5), next_calls(&calls, &mut held_over))
            .await
            .expect("a held-over call does not wait for the queue");
        assert_eq!(sizes(&written.unwrap()), [1_000]);
        queue.send(call("acme", 1)).await.unwrap();
        assert_eq!(waiting.await.unwrap(), Some(vec![1]));
    }
}

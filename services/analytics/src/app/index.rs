//! Each replica's copy of every consumer's facts, in memory, kept current from the log of changed
//! consumers: FAST and the channel overlap are read from it in one pass over a tenant's consumers
//! (`domain::fast`) instead of grouping every purchase in SQL.
//!
//! Whichever replica applies an event logs the consumers it changed in the same transaction
//! (`store::changes`). Before answering, a replica reads the log past its position and reads
//! those consumers' facts again, whole, in one snapshot: a merge, a refund or a folded identity
//! is a consumer read again, never a delta to get right. A replica that has fallen behind what
//! the log keeps, or that starts, reads every fact.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use quanyu_runtime::db::begin_snapshot;
use quanyu_runtime::shutdown::Shutdown;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use tokio::sync::{Mutex, OwnedRwLockReadGuard, RwLock};

use crate::domain::Place;
use crate::domain::fast::{Consumer, Enrolment, Enrolments, Interaction, PlaceNumber, Purchase, day_number};
use crate::domain::interaction::is_anonymous;
use crate::error::AnalyticsError;
use crate::store::changes::{self, Changed, FactKind, FactRow};

/// Changes the log keeps: a replica further behind reads every fact again.
const CHANGES_KEPT: i64 = 1_000_000;
/// Changed consumers a replica reads one by one; more, and it reads every fact.
const MOST_READ_ONE_BY_ONE: usize = 100_000;
/// How often a replica catches up without being asked, so that a query finds little to read.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// One tenant's consumers and the places they were seen at. Every consumer's purchase and
/// interaction days lie in two arenas, in consumer order after a full read, so that a pass over
/// the consumers reads memory in order rather than chasing a pointer per consumer (which made it
/// several times slower). A consumer read again gets new rows at the arenas' end; the arenas are
/// rewritten in order once more of them is stale than live.
#[derive(Debug, Default)]
pub struct TenantFacts {
    places: Vec<Place>,
    place_numbers: HashMap<Place, PlaceNumber>,
    consumer_ids: Vec<String>,
    slots: HashMap<String, usize>,
    consumers: Vec<Stored>,
    purchases: Vec<Purchase>,
    interactions: Vec<Interaction>,
    /// Rows of the arenas no consumer points at any more.
    stale_rows: usize,
    enrolments: Enrolments,
}

/// A consumer as the tenant holds it: its rows are ranges of the arenas.
#[derive(Debug, Clone)]
struct Stored {
    anonymous: bool,
    enrolment: Option<Enrolment>,
    purchases: Range<usize>,
    interactions: Range<usize>,
}

impl TenantFacts {
    /// Each consumer's facts, of one of `parts` about equal parts of the consumers.
    pub fn consumers(&self, (part, parts): (usize, usize)) -> impl Iterator<Item = Consumer<'_>> + '_ {
        let each = self.consumers.len().div_ceil(parts.max(1));
        let start = (part * each).min(self.consumers.len());
        let end = (start + each).min(self.consumers.len());
        self.consumers[start..end].iter().map(|stored| self.view(stored))
    }

    /// The tenant's places, by place number.
    pub fn places(&self) -> &[Place] {
        &self.places
    }

    /// Its members by place and day of enrolment.
    pub fn enrolments(&self) -> &Enrolments {
        &self.enrolments
    }

    fn view(&self, stored: &Stored) -> Consumer<'_> {
        Consumer {
            anonymous: stored.anonymous,
            enrolment: stored.enrolment,
            purchases: &self.purchases[stored.purchases.clone()],
            interactions: &self.interactions[stored.interactions.clone()],
        }
    }

    fn place_number(&mut self, place: &Place) -> Result<PlaceNumber, AnalyticsError> {
        if let Some(number) = self.place_numbers.get(place) {
            return Ok(*number);
        }
        let number = PlaceNumber::try_from(self.places.len()).map_err(|_| {
            AnalyticsError::OverCapacity(format!(
                "a tenant has more than {} places (brand, channel and store): analytics holds no more in memory",
                PlaceNumber::MAX
            ))
        })?;
        self.places.push(place.clone());
        self.place_numbers.insert(place.clone(), number);
        Ok(number)
    }

    /// Puts the consumer's facts in place of those it had; a consumer left with none is removed.
    fn replace(&mut self, consumer_id: &str, draft: Draft) {
        let old = self.slots.get(consumer_id).copied();
        if let Some(slot) = old {
            let stored = &self.consumers[slot];
            self.stale_rows += stored.purchases.len() + stored.interactions.len();
            if let Some(enrolment) = stored.enrolment {
                self.enrolments.add(enrolment, -1);
            }
        }
        if let Some(enrolment) = draft.enrolment {
            self.enrolments.add(enrolment, 1);
        }
        match (old, draft.is_empty()) {
            (Some(slot), false) => self.consumers[slot] = self.store(consumer_id, draft),
            (Some(slot), true) => {
                self.consumers.swap_remove(slot);
                self.consumer_ids.swap_remove(slot);
                self.slots.remove(consumer_id);
                if let Some(moved) = self.consumer_ids.get(slot) {
                    self.slots.insert(moved.clone(), slot);
                }
            }
            (None, false) => {
                let stored = self.store(consumer_id, draft);
                self.slots.insert(consumer_id.to_owned(), self.consumers.len());
                self.consumer_ids.push(consumer_id.to_owned());
                self.consumers.push(stored);
            }
            (None, true) => {}
        }
        if self.stale_rows > self.purchases.len() + self.interactions.len() - self.stale_rows {
            self.rewrite_arenas();
        }
    }

    /// Appends a draft's rows, sorted by day, to the arenas.
    fn store(&mut self, consumer_id: &str, mut draft: Draft) -> Stored {
        draft.purchases.sort_unstable_by_key(|purchase| purchase.day);
        draft.interactions.sort_unstable_by_key(|interaction| interaction.day);
        let purchases = self.purchases.len()..self.purchases.len() + draft.purchases.len();
        let interactions = self.interactions.len()..self.interactions.len() + draft.interactions.len();
        self.purchases.extend(draft.purchases);
        self.interactions.extend(draft.interactions);
        Stored {
            anonymous: is_anonymous(consumer_id),
            enrolment: draft.enrolment,
            purchases,
            interactions,
        }
    }

    /// Copies the live rows into new arenas, in consumer order.
    fn rewrite_arenas(&mut self) {
        let mut purchases = Vec::with_capacity(self.purchases.len() - self.stale_rows.min(self.purchases.len()));
        let mut interactions = Vec::new();
        for stored in &mut self.consumers {
            let start = purchases.len();
            purchases.extend_from_slice(&self.purchases[stored.purchases.clone()]);
            stored.purchases = start..purchases.len();
            let start = interactions.len();
            interactions.extend_from_slice(&self.interactions[stored.interactions.clone()]);
            stored.interactions = start..interactions.len();
        }
        self.purchases = purchases;
        self.interactions = interactions;
        self.stale_rows = 0;
    }
}

/// Every tenant's facts.
#[derive(Debug, Default)]
pub struct Facts {
    tenants: HashMap<String, TenantFacts>,
}

impl Facts {
    pub fn tenant(&self, tenant_id: &str) -> Option<&TenantFacts> {
        self.tenants.get(tenant_id)
    }
}

/// How far the copy has read the log.
#[derive(Debug, Default)]
struct Position {
    loaded: bool,
    read_through: i64,
}

/// A replica's facts in memory; clones share them.
#[derive(Clone)]
pub struct FactIndex {
    db: DatabaseConnection,
    facts: Arc<RwLock<Facts>>,
    /// Taken by whoever reads the log, so that one reader at a time applies it.
    position: Arc<Mutex<Position>>,
}

impl FactIndex {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            facts: Arc::default(),
            position: Arc::default(),
        }
    }

    /// The facts as of every change committed before the call.
    pub async fn current(&self) -> Result<OwnedRwLockReadGuard<Facts>, AnalyticsError> {
        self.refresh().await?;
        Ok(self.facts.clone().read_owned().await)
    }

    /// Reads the log past the position, and the facts of the consumers it names.
    async fn refresh(&self) -> Result<(), AnalyticsError> {
        let mut position = self.position.lock().await;
        let txn = begin_snapshot(&self.db).await?;
        let (oldest, latest) = changes::bounds(&txn).await?;
        if position.loaded && latest == position.read_through {
            return Ok(());
        }
        // Changes past the position were pruned when the oldest kept is past it too.
        let changed = if position.loaded && oldest <= position.read_through.max(1) {
            changes::since(&txn, (position.read_through, latest), MOST_READ_ONE_BY_ONE).await?
        } else {
            None
        };
        let kind = if changed.is_some() { "changed" } else { "every" };
        match changed {
            Some(changed) => self.read_again(&txn, &changed).await?,
            None => {
                let started = std::time::Instant::now();
                // Read before the lock is taken: queries go on meanwhile, from the copy as it was.
                let facts = read_all(&txn).await?;
                *self.facts.write().await = facts;
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(seconds, "read every consumer's facts into memory");
            }
        }
        txn.commit().await?;
        *position = Position {
            loaded: true,
            read_through: latest,
        };
        metrics::counter!("analytics_facts_reads_total", "kind" => kind).increment(1);
        let consumers: usize = self
            .facts
            .read()
            .await
            .tenants
            .values()
            .map(|tenant| tenant.consumers.len())
            .sum();
        #[allow(clippy::cast_precision_loss)] // a gauge needs no more than f64's 53 bits
        metrics::gauge!("analytics_facts_consumers").set(consumers as f64);
        Ok(())
    }

    /// Reads the facts of `changed` consumers again, and puts them in place of theirs.
    async fn read_again(&self, txn: &DatabaseTransaction, changed: &BTreeSet<Changed>) -> Result<(), AnalyticsError> {
        // Every changed consumer has a draft, so that one with no rows left is removed.
        let mut drafts = Drafts::new();
        for (tenant_id, consumer_id) in changed {
            let consumers = drafts.entry(tenant_id.clone()).or_default();
            consumers.insert(consumer_id.clone(), Draft::default());
        }
        let mut rows = Vec::new();
        for (tenant_id, consumers) in &drafts {
            let consumer_ids: Vec<&str> = consumers.keys().map(String::as_str).collect();
            changes::read_consumers(txn, tenant_id, &consumer_ids, |row| {
                rows.push(row);
                Ok::<_, AnalyticsError>(())
            })
            .await?;
        }
        // Read before the lock is taken, as a full read is.
        let mut facts = self.facts.write().await;
        for row in &rows {
            draft_row(&mut facts, &mut drafts, row)?;
        }
        put_drafts(&mut facts, drafts);
        Ok(())
    }

    /// Keeps the copy current and the log pruned until `shutdown`: the first read, at start,
    /// reads every fact.
    pub async fn keep_current(self, shutdown: Shutdown) {
        let mut every = tokio::time::interval(REFRESH_EVERY);
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                _ = every.tick() => {}
            }
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "reading the changed consumers' facts failed; retrying");
            }
            if let Err(error) = changes::prune(&self.db, CHANGES_KEPT).await {
                tracing::warn!(%error, "pruning the log of changed consumers failed; retrying");
            }
        }
    }
}

/// Every tenant's facts, read from the database.
async fn read_all(txn: &DatabaseTransaction) -> Result<Facts, AnalyticsError> {
    let mut facts = Facts::default();
    let mut drafts = Drafts::new();
    changes::read_all(txn, |row| draft_row(&mut facts, &mut drafts, &row)).await?;
    put_drafts(&mut facts, drafts);
    Ok(facts)
}

/// Consumers' facts as they are read, by tenant and consumer.
type Drafts = HashMap<String, HashMap<String, Draft>>;

/// Adds a row to its consumer's draft, its place numbered among its tenant's.
fn draft_row(facts: &mut Facts, drafts: &mut Drafts, row: &FactRow) -> Result<(), AnalyticsError> {
    let tenant = facts.tenants.entry(row.tenant_id.clone()).or_default();
    let place = tenant.place_number(&row.place)?;
    let consumers = drafts.entry(row.tenant_id.clone()).or_default();
    consumers.entry(row.consumer_id.clone()).or_default().add(row, place)
}

/// Puts each draft in place of its consumer's facts.
fn put_drafts(facts: &mut Facts, drafts: Drafts) {
    for (tenant_id, consumers) in drafts {
        let tenant = facts.tenants.entry(tenant_id).or_default();
        for (consumer_id, draft) in consumers {
            tenant.replace(&consumer_id, draft);
        }
    }
}

/// A consumer's facts as they are read, in any order.
#[derive(Debug, Default)]
struct Draft {
    enrolment: Option<Enrolment>,
    purchases: Vec<Purchase>,
    interactions: Vec<Interaction>,
}

impl Draft {
    fn add(&mut self, row: &FactRow, place: PlaceNumber) -> Result<(), AnalyticsError> {
        // Analytics writes every day itself, as windows name them: another is a corrupt row.
        let day = day_number(&row.day)
            .ok_or_else(|| DbErr::Type(format!("{:?} of consumer {} is not a day", row.day, row.consumer_id)))?;
        let [a, b] = row.counters;
        match row.kind {
            FactKind::Enrolment => self.enrolment = Some(Enrolment { day, place }),
            FactKind::Purchases => self.purchases.push(Purchase {
                spend_minor: b,
                day,
                place,
                bought: a > 0,
            }),
            FactKind::Interactions => self.interactions.push(Interaction {
                day,
                place,
                exposed: a > 0,
                engaged: b > 0,
            }),
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.enrolment.is_none() && self.purchases.is_empty() && self.interactions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fast::DayNumber;

    fn bought_on(days: &[DayNumber]) -> Draft {
        let purchase = |day: &DayNumber| Purchase {
            spend_minor: 100,
            day: *day,
            place: 0,
            bought: true,
        };
        Draft {
            purchases: days.iter().map(purchase).collect(),
            ..Draft::default()
        }
    }

    fn days_of(tenant: &TenantFacts, part: (usize, usize)) -> Vec<Vec<DayNumber>> {
        let days = |consumer: Consumer<'_>| consumer.purchases.iter().map(|purchase| purchase.day).collect();
        tenant.consumers(part).map(days).collect()
    }

    #[test]
    fn a_consumer_read_again_replaces_its_days_and_one_left_with_none_leaves() {
        let mut tenant = TenantFacts::default();
        tenant.replace("a", bought_on(&[3, 1]));
        tenant.replace("b", bought_on(&[2]));
        tenant.replace("c", bought_on(&[5]));
        assert_eq!(days_of(&tenant, (0, 1)), [vec![1, 3], vec![2], vec![5]]);
        tenant.replace("a", bought_on(&[4]));
        assert_eq!(days_of(&tenant, (0, 1)), [vec![4], vec![2], vec![5]]);
        // a's slot is taken by the last consumer; its stale days now outnumber the live ones,
        // and the arena is rewritten with only those.
        tenant.replace("a", Draft::default());
        assert_eq!(days_of(&tenant, (0, 1)), [vec![5], vec![2]]);
        assert_eq!((tenant.purchases.len(), tenant.stale_rows), (2, 0));
        tenant.replace("c", bought_on(&[6]));
        assert_eq!(days_of(&tenant, (0, 1)), [vec![6], vec![2]]);
    }

    #[test]
    fn the_parts_hold_every_consumer_once() {
        let mut tenant = TenantFacts::default();
        for day in 0..7 {
            tenant.replace(&format!("m{day}"), bought_on(&[day]));
        }
        for parts in 1..=8 {
            let together: Vec<_> = (0..parts).flat_map(|part| days_of(&tenant, (part, parts))).collect();
            assert_eq!(together, days_of(&tenant, (0, 1)), "{parts} parts");
        }
    }
}

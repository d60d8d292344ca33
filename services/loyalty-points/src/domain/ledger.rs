//! One account's points: append-only entries, the lots that earned points sit in until spent or
//! expired, and holds that reserve points at the till.
//!
//! Invariants, after every operation:
//! - the balance is the sum of all entries, and each entry records the balance after it;
//! - the lots' remainders add up to the balance when it is not negative, and are all empty when it
//!   is (a refund of points already spent leaves a debt; later credits pay it first);
//! - no lot's remainder is negative or above what it earned;
//! - holds never exceed what was available when they were placed, and confirming one never makes
//!   the balance negative;
//! - no change moves more than [`MAX_POINTS_PER_CHANGE`], and no credit or debit takes the balance
//!   past [`MAX_BALANCE`] either way: every step is checked, nothing wraps.

use chrono::{DateTime, Utc};

pub type Timestamp = DateTime<Utc>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Earn,
    Redeem,
    Expire,
    Reverse,
    Adjust,
    Grant,
    MergeIn,
    MergeOut,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Signed: credits positive, debits negative.
    pub amount: i64,
    pub balance_after: i64,
    pub at: Timestamp,
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub id: u64,
    pub earned_at: Timestamp,
    pub expires_at: Timestamp,
    pub original: i64,
    pub remaining: i64,
    /// What earned it (the order's idempotency key), so that a refund takes from it first.
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: u64,
    pub amount: i64,
    pub expires_at: Timestamp,
    pub reference: String,
}

/// The most points one change may move (an adjustment, a redemption, a hold, what one sale
/// earns): far above any real grant, and small enough that sums of them stay far inside `i64`.
pub const MAX_POINTS_PER_CHANGE: i64 = 1_000_000_000_000;

/// The largest balance, and the largest debt, that a credit or a debit may leave on an account.
pub const MAX_BALANCE: i64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("points must be positive, got {0}")]
    NotPositive(i64),
    #[error("at most {MAX_POINTS_PER_CHANGE} points may move at once, got {0}")]
    TooManyPoints(i64),
    #[error("would take the balance past {MAX_BALANCE} either way (it is {balance})")]
    BalanceOutOfRange { balance: i64 },
    #[error("the merged balances do not fit in a balance")]
    MergeOverflow,
    #[error("insufficient points: {available} available, {requested} requested")]
    InsufficientPoints { available: i64, requested: i64 },
    #[error("hold {0} not found")]
    HoldNotFound(u64),
    #[error("hold {} {}", .0.id, .0.describe())]
    HoldEnded(EndedHold),
    #[error("a lot must expire after it is earned")]
    ExpiryNotAfterEarning,
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    Confirmed,
    Released,
    Expired,
}

/// A hold that ended, remembered so that a till confirming or releasing it is told how it ended
/// rather than that it never existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedHold {
    pub id: u64,
    pub end: HoldEnd,
    pub at: Timestamp,
}

impl EndedHold {
    fn describe(&self) -> String {
        let how = match self.end {
            HoldEnd::Confirmed => "was confirmed",
            HoldEnd::Released => "was released",
            HoldEnd::Expired => "expired",
        };
        format!(
            "{how} at {}",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// How many ended holds an account remembers, the latest: a till asks about its hold within
/// minutes of placing it, while an account's row carries what it remembers.
pub const ENDED_HOLDS_KEPT: usize = 32;

/// The kinds of credit that make a lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credit {
    Earn,
    Grant,
    Adjust,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    balance: i64,
    lots: Vec<Lot>,
    holds: Vec<Hold>,
    /// The latest holds that ended, oldest first.
    ended: Vec<EndedHold>,
    entries: Vec<Entry>,
    next_id: u64,
}

fn positive(points: i64) -> Result<i64, LedgerError> {
    match points {
        ..=0 => Err(LedgerError::NotPositive(points)),
        1..=MAX_POINTS_PER_CHANGE => Ok(points),
        _ => Err(LedgerError::TooManyPoints(points)),
    }
}

impl Ledger {
    /// Rebuilds an account's ledger from its stored state; `entries` then holds only what the
    /// operations that follow append.
    pub fn restore(balance: i64, lots: Vec<Lot>, holds: Vec<Hold>, ended: Vec<EndedHold>, last_id: u64) -> Self {
        let highest = lots
            .iter()
            .map(|lot| lot.id)
            .chain(holds.iter().map(|hold| hold.id))
            .max()
            .unwrap_or(0);
        Self {
            balance,
            lots,
            holds,
            ended,
            entries: Vec::new(),
            next_id: last_id.max(highest),
        }
    }

    /// The latest holds that ended, oldest first.
    pub fn ended_holds(&self) -> &[EndedHold] {
        &self.ended
    }

    fn end_hold(&mut self, id: u64, end: HoldEnd, at: Timestamp) {
        self.ended.push(EndedHold { id, end, at });
        let forgotten = self.ended.len().saturating_sub(ENDED_HOLDS_KEPT);
        self.ended.drain(..forgotten);
    }

    /// Why hold `id` is not open: it ended (and how), or there never was such a hold.
    fn not_open(&self, id: u64) -> LedgerError {
        match self.ended.iter().rev().find(|ended| ended.id == id) {
            Some(ended) => LedgerError::HoldEnded(ended.clone()),
            None => LedgerError::HoldNotFound(id),
        }
    }

    /// The last lot or hold id handed out, to be stored with the account.
    pub fn last_id(&self) -> u64 {
        self.next_id
    }

    /// Hands over the entries appended since the ledger was restored.
    pub fn take_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }

    pub fn balance(&self) -> i64 {
        self.balance
    }

    pub fn held(&self) -> i64 {
        self.holds.iter().map(|hold| hold.amount).sum()
    }

    /// What can be redeemed or held now: the balance less open holds.
    pub fn available(&self) -> i64 {
        self.balance - self.held()
    }

    pub fn lots(&self) -> &[Lot] {
        &self.lots
    }

    pub fn holds(&self) -> &[Hold] {
        &self.holds
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The balance after moving `amount` (at most [`MAX_POINTS_PER_CHANGE`]), if it stays within
    /// [`MAX_BALANCE`].
    fn balance_after(&self, amount: i64) -> Result<i64, LedgerError> {
        self.balance
            .checked_add(amount)
            .filter(|after| after.abs() <= MAX_BALANCE)
            .ok_or(LedgerError::BalanceOutOfRange { balance: self.balance })
    }

    /// Appends an entry moving the balance to `balance_after`, which the caller checked.
    fn record(&mut self, kind: EntryKind, balance_after: i64, at: Timestamp, reference: &str) {
        let amount = balance_after - self.balance;
        self.balance = balance_after;
        self.entries.push(Entry {
            kind,
            amount,
            balance_after,
            at,
            reference: reference.to_owned(),
        });
    }

    /// Trims lot remainders down to the balance (nothing when it is negative): lots of
    /// `preferred` first, then soonest-expiring first.
    fn settle(&mut self, preferred: Option<&str>) {
        let mut excess = self.lots.iter().map(|lot| lot.remaining).sum::<i64>() - self.balance.max(0);
        let mut order: Vec<usize> = (0..self.lots.len()).collect();
        order.sort_by_key(|&index| {
            let lot = &self.lots[index];
            (Some(lot.reference.as_str()) != preferred, lot.expires_at, lot.id)
        });
        for index in order {
            if excess <= 0 {
                break;
            }
            let lot = &mut self.lots[index];
            let taken = lot.remaining.min(excess);
            lot.remaining -= taken;
            excess -= taken;
        }
    }

    /// Whether [`credit`](Self::credit) would take these points, telling why not.
    pub fn check_credit(&self, points: i64, at: Timestamp, expires_at: Timestamp) -> Result<(), LedgerError> {
        self.balance_after(positive(points)?)?;
        if expires_at <= at {
            return Err(LedgerError::ExpiryNotAfterEarning);
        }
        Ok(())
    }

    /// Credits points as a new lot expiring at `expires_at`; a debt is paid from it first.
    pub fn credit(
        &mut self,
        credit: Credit,
        points: i64,
        at: Timestamp,
        expires_at: Timestamp,
        reference: &str,
    ) -> Result<u64, LedgerError> {
        self.check_credit(points, at, expires_at)?;
        let after = self.balance_after(points)?;
        let kind = match credit {
            Credit::Earn => EntryKind::Earn,
            Credit::Grant => EntryKind::Grant,
            Credit::Adjust => EntryKind::Adjust,
        };
        let id = self.next_id();
        self.lots.push(Lot {
            id,
            earned_at: at,
            expires_at,
            original: points,
            remaining: points,
            reference: reference.to_owned(),
        });
        self.record(kind, after, at, reference);
        self.settle(None);
        Ok(id)
    }

    /// Spends available points, soonest-expiring lots first.
    pub fn redeem(&mut self, points: i64, at: Timestamp, reference: &str) -> Result<(), LedgerError> {
        let points = positive(points)?;
        if points > self.available() {
            return Err(LedgerError::InsufficientPoints {
                available: self.available(),
                requested: points,
            });
        }
        let after = self.balance_after(-points)?;
        self.record(EntryKind::Redeem, after, at, reference);
        self.settle(None);
        Ok(())
    }

    /// Reserves available points until `expires_at`.
    pub fn place_hold(&mut self, points: i64, expires_at: Timestamp, reference: &str) -> Result<u64, LedgerError> {
        let points = positive(points)?;
        if points > self.available() {
            return Err(LedgerError::InsufficientPoints {
                available: self.available(),
                requested: points,
            });
        }
        let id = self.next_id();
        self.holds.push(Hold {
            id,
            amount: points,
            expires_at,
            reference: reference.to_owned(),
        });
        Ok(id)
    }

    /// Releases an open hold at `at`.
    pub fn release_hold(&mut self, id: u64, at: Timestamp) -> Result<Hold, LedgerError> {
        let hold = self.take_hold(id)?;
        self.end_hold(id, HoldEnd::Released, at);
        Ok(hold)
    }

    fn take_hold(&mut self, id: u64) -> Result<Hold, LedgerError> {
        match self.holds.iter().position(|hold| hold.id == id) {
            Some(index) => Ok(self.holds.remove(index)),
            None => Err(self.not_open(id)),
        }
    }

    /// Turns a hold into a redemption. An expired hold is released instead and refused; a hold
    /// that the balance no longer covers (a refund came in between) is refused and kept.
    pub fn confirm_hold(&mut self, id: u64, at: Timestamp) -> Result<(), LedgerError> {
        let hold = self
            .holds
            .iter()
            .find(|hold| hold.id == id)
            .cloned()
            .ok_or_else(|| self.not_open(id))?;
        if hold.expires_at <= at {
            self.take_hold(id)?;
            self.end_hold(id, HoldEnd::Expired, hold.expires_at);
            return Err(self.not_open(id));
        }
        if hold.amount > self.balance {
            return Err(LedgerError::InsufficientPoints {
                available: self.balance.max(0),
                requested: hold.amount,
            });
        }
        self.take_hold(id)?;
        self.end_hold(id, HoldEnd::Confirmed, at);
        self.record(EntryKind::Redeem, self.balance - hold.amount, at, &hold.reference);
        self.settle(None);
        Ok(())
    }

    /// Releases the holds whose time is up.
    pub fn release_expired_holds(&mut self, at: Timestamp) -> Vec<Hold> {
        let (expired, open): (Vec<Hold>, Vec<Hold>) = self.holds.drain(..).partition(|hold| hold.expires_at <= at);
        self.holds = open;
        for hold in &expired {
            self.end_hold(hold.id, HoldEnd::Expired, hold.expires_at);
        }
        expired
    }

    /// Expires what is left of every lot due by `at`, one EXPIRE entry per lot. Points reserved by
    /// open holds are kept until the holds close; the next run expires them.
    pub fn expire(&mut self, at: Timestamp) -> i64 {
        let mut expirable = self.available().max(0);
        let mut due: Vec<usize> = (0..self.lots.len())
            .filter(|&index| self.lots[index].expires_at <= at && self.lots[index].remaining > 0)
            .collect();
        due.sort_by_key(|&index| (self.lots[index].expires_at, self.lots[index].id));
        let mut total = 0;
        for index in due {
            let amount = self.lots[index].remaining.min(expirable);
            if amount == 0 {
                break;
            }
            self.lots[index].remaining -= amount;
            expirable -= amount;
            total += amount;
            let reference = format!("lot:{}", self.lots[index].id);
            // Never below zero: it expires at most what is available.
            self.record(EntryKind::Expire, self.balance - amount, at, &reference);
        }
        total
    }

    /// Takes back points an order earned (a refund): from that order's lots first, then the
    /// soonest-expiring; what was already spent leaves the balance negative.
    pub fn reverse(&mut self, points: i64, at: Timestamp, order_reference: &str) -> Result<(), LedgerError> {
        let after = self.balance_after(-positive(points)?)?;
        self.record(EntryKind::Reverse, after, at, order_reference);
        self.settle(Some(order_reference));
        Ok(())
    }

    /// A correction by the platform that takes points away; may leave the balance negative.
    pub fn debit_adjustment(&mut self, points: i64, at: Timestamp, reason: &str) -> Result<(), LedgerError> {
        let after = self.balance_after(-positive(points)?)?;
        self.record(EntryKind::Adjust, after, at, reason);
        self.settle(None);
        Ok(())
    }

    /// Folds a merged member's ledger into this one: its lots move with their expiry, its
    /// balance (or debt) arrives as one MERGE_IN entry, and it is left with one MERGE_OUT entry
    /// and nothing else. Its open holds are released. The points exist already, so the merge is
    /// not held to [`MAX_BALANCE`] (later credits are, until the balance is back within it); only
    /// a sum past `i64` is refused, and then nothing has moved.
    pub fn absorb(&mut self, loser: &mut Ledger, at: Timestamp, reference: &str) -> Result<(), LedgerError> {
        let moved = loser.balance;
        let after = self.balance.checked_add(moved).ok_or(LedgerError::MergeOverflow)?;
        moved.checked_neg().ok_or(LedgerError::MergeOverflow)?;
        loser.holds.clear();
        for lot in loser.lots.drain(..) {
            let id = self.next_id();
            self.lots.push(Lot { id, ..lot });
        }
        if moved != 0 {
            loser.record(EntryKind::MergeOut, 0, at, reference);
            self.record(EntryKind::MergeIn, after, at, reference);
        }
        self.settle(None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn day(n: i64) -> Timestamp {
        Utc.timestamp_opt(1_767_225_600, 0).unwrap() + chrono::Duration::days(n)
    }

    fn check_invariants(ledger: &Ledger) {
        let sum: i64 = ledger.entries.iter().map(|entry| entry.amount).sum();
        assert_eq!(sum, ledger.balance, "balance is the sum of entries");
        let mut running = 0;
        for entry in &ledger.entries {
            running += entry.amount;
            assert_eq!(entry.balance_after, running);
        }
        let remaining: i64 = ledger.lots.iter().map(|lot| lot.remaining).sum();
        assert_eq!(remaining, ledger.balance.max(0), "lots hold exactly the balance");
        assert!(
            ledger
                .lots
                .iter()
                .all(|lot| (0..=lot.original).contains(&lot.remaining))
        );
    }

    #[test]
    fn redemptions_take_the_soonest_expiring_lots_first() {
        let mut ledger = Ledger::default();
        ledger.credit(Credit::Earn, 100, day(0), day(365), "late").unwrap();
        ledger.credit(Credit::Earn, 50, day(1), day(30), "soon").unwrap();
        ledger.redeem(70, day(2), "till-1").unwrap();
        let remaining: Vec<(String, i64)> = ledger.lots.iter().map(|l| (l.reference.clone(), l.remaining)).collect();
        assert_eq!(remaining, vec![("late".into(), 80), ("soon".into(), 0)]);
        assert_eq!(
            ledger.redeem(81, day(2), "x"),
            Err(LedgerError::InsufficientPoints {
                available: 80,
                requested: 81
            })
        );
        check_invariants(&ledger);
    }

    #[test]
    fn refunds_after_redemption_leave_a_debt_that_later_earns_pay_first() {
        let mut ledger = Ledger::default();
        ledger.credit(Credit::Earn, 100, day(0), day(365), "order-1").unwrap();
        ledger.redeem(80, day(1), "till").unwrap();
        ledger.reverse(100, day(2), "order-1").unwrap();
        assert_eq!(ledger.balance(), -80);
        check_invariants(&ledger);
        ledger.credit(Credit::Earn, 50, day(3), day(365), "order-2").unwrap();
        assert_eq!(ledger.balance(), -30);
        assert_eq!(ledger.lots.iter().map(|l| l.remaining).sum::<i64>(), 0);
        ledger.credit(Credit::Earn, 50, day(4), day(365), "order-3").unwrap();
        assert_eq!(ledger.balance(), 20);
        assert_eq!(ledger.lots.last().unwrap().remaining, 20);
        check_invariants(&ledger);
    }

    #[test]
    fn a_refund_takes_from_its_own_order_first() {
        let mut ledger = Ledger::default();
        ledger.credit(Credit::Earn, 100, day(0), day(30), "order-1").unwrap();
        ledger.credit(Credit::Earn, 100, day(0), day(365), "order-2").unwrap();
        ledger.reverse(60, day(1), "order-2").unwrap();
        let remaining: Vec<i64> = ledger.lots.iter().map(|l| l.remaining).collect();
        assert_eq!(remaining, vec![100, 40]);
    }

    #[test]
    fn expiry_at_a_year_boundary_and_holds() {
        let year_end = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        let mut ledger = Ledger::default();
        ledger.credit(Credit::Earn, 100, day(-30), year_end, "o1").unwrap();
        ledger
            .credit(Credit::Earn, 40, day(-1), year_end + chrono::Duration::days(365), "o2")
            .unwrap();
        let hold = ledger
            .place_hold(120, year_end + chrono::Duration::hours(1), "till")
            .unwrap();
        assert_eq!(ledger.expire(year_end - chrono::Duration::seconds(1)), 0, "not yet due");
        assert_eq!(
            ledger.expire(year_end),
            20,
            "held points do not expire while the hold is open"
        );
        ledger.release_hold(hold, day(1)).unwrap();
        assert_eq!(ledger.expire(year_end), 80);
        assert_eq!(ledger.balance(), 40);
        assert_eq!(ledger.entries.iter().filter(|e| e.kind == EntryKind::Expire).count(), 2);
        check_invariants(&ledger);

        let hold = ledger.place_hold(30, day(10), "till").unwrap();
        assert_eq!(ledger.available(), 10);
        assert!(ledger.redeem(11, day(5), "x").is_err());
        let expired = EndedHold {
            id: hold,
            end: HoldEnd::Expired,
            at: day(10),
        };
        assert_eq!(ledger.confirm_hold(hold, day(10)), Err(LedgerError::HoldEnded(expired)));
        assert!(ledger.holds.is_empty(), "an expired hold is released");
    }

    #[test]
    fn an_ended_hold_is_told_from_one_that_never_was() {
        let mut ledger = Ledger::default();
        ledger.credit(Credit::Earn, 100, day(0), day(365), "order-1").unwrap();
        let confirmed = ledger.place_hold(10, day(2), "till").unwrap();
        let released = ledger.place_hold(10, day(2), "till").unwrap();
        let lapsed = ledger.place_hold(10, day(2), "till").unwrap();
        ledger.confirm_hold(confirmed, day(1)).unwrap();
        ledger.release_hold(released, day(1)).unwrap();
        ledger.release_expired_holds(day(3));
        let ended = |id, end, at| Err(LedgerError::HoldEnded(EndedHold { id, end, at }));
        assert_eq!(
            ledger.release_hold(confirmed, day(4)).map(|_| ()),
            ended(confirmed, HoldEnd::Confirmed, day(1))
        );
        assert_eq!(
            ledger.confirm_hold(released, day(4)),
            ended(released, HoldEnd::Released, day(1))
        );
        assert_eq!(
            ledger.confirm_hold(lapsed, day(4)),
            ended(lapsed, HoldEnd::Expired, day(2))
        );
        assert_eq!(ledger.confirm_hold(99, day(4)), Err(LedgerError::HoldNotFound(99)));
        for _ in 0..ENDED_HOLDS_KEPT {
            let hold = ledger.place_hold(1, day(5), "till").unwrap();
            ledger.release_hold(hold, day(4)).unwrap();
        }
        assert_eq!(ledger.ended_holds().len(), ENDED_HOLDS_KEPT, "only the latest are kept");
    }

    #[test]
    fn merging_moves_lots_with_their_expiry() {
        let mut survivor = Ledger::default();
        survivor.credit(Credit::Earn, 100, day(0), day(365), "s").unwrap();
        let mut loser = Ledger::default();
        loser.credit(Credit::Earn, 50, day(0), day(10), "l").unwrap();
        survivor.absorb(&mut loser, day(1), "merge:l").unwrap();
        assert_eq!((survivor.balance(), loser.balance()), (150, 0));
        assert!(
            survivor
                .lots
                .iter()
                .any(|lot| lot.expires_at == day(10) && lot.remaining == 50)
        );
        assert_eq!(survivor.expire(day(10)), 50);
        check_invariants(&survivor);
        check_invariants(&loser);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Earn(i64, i64),
        Redeem(i64),
        Hold(i64, i64),
        Confirm(usize),
        Release(usize),
        Expire,
        Refund(i64, usize),
        Debit(i64),
        Merge(i64, i64),
        Tick(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1i64..500, 1i64..400).prop_map(|(p, d)| Op::Earn(p, d)),
            (1i64..500).prop_map(Op::Redeem),
            (1i64..300, 0i64..5).prop_map(|(p, d)| Op::Hold(p, d)),
            (0usize..4).prop_map(Op::Confirm),
            (0usize..4).prop_map(Op::Release),
            Just(Op::Expire),
            (1i64..500, 0usize..6).prop_map(|(p, o)| Op::Refund(p, o)),
            (1i64..200).prop_map(Op::Debit),
            (-200i64..300, 1i64..400).prop_map(|(p, d)| Op::Merge(p, d)),
            (1i64..90).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Random sequences against a reference model that only adds and subtracts: the ledger
        /// agrees with it on the balance and never breaks its invariants.
        #[test]
        fn ledger_matches_a_simple_model(ops in proptest::collection::vec(op(), 1..60)) {
            let mut ledger = Ledger::default();
            let mut model_balance = 0i64;
            let mut now = day(0);
            let mut holds: Vec<u64> = Vec::new();
            for (step, op) in ops.into_iter().enumerate() {
                let reference = format!("order-{}", step % 6);
                match op {
                    Op::Earn(points, days) => {
                        ledger.credit(Credit::Earn, points, now, now + chrono::Duration::days(days), &reference).unwrap();
                        model_balance += points;
                    }
                    Op::Redeem(points) => {
                        let allowed = points <= ledger.available();
                        prop_assert_eq!(ledger.redeem(points, now, "till").is_ok(), allowed);
                        if allowed { model_balance -= points; }
                    }
                    Op::Hold(points, days) => {
                        let allowed = points <= ledger.available();
                        let placed = ledger.place_hold(points, now + chrono::Duration::days(days), "till");
                        prop_assert_eq!(placed.is_ok(), allowed);
                        if let Ok(id) = placed { holds.push(id); }
                    }
                    Op::Confirm(index) => {
                        if let Some(&id) = holds.get(index) {
                            let amount = ledger.holds().iter().find(|h| h.id == id).map(|h| h.amount);
                            if ledger.confirm_hold(id, now).is_ok() {
                                model_balance -= amount.unwrap_or_default();
                                prop_assert!(ledger.balance() >= 0, "a confirmed hold never overspends");
                            }
                        }
                    }
                    Op::Release(index) => {
                        if let Some(&id) = holds.get(index) { let _ = ledger.release_hold(id, now); }
                    }
                    Op::Expire => {
                        ledger.release_expired_holds(now);
                        model_balance -= ledger.expire(now);
                    }
                    Op::Refund(points, order) => {
                        ledger.reverse(points, now, &format!("order-{order}")).unwrap();
                        model_balance -= points;
                    }
                    Op::Debit(points) => {
                        ledger.debit_adjustment(points, now, "correction").unwrap();
                        model_balance -= points;
                    }
                    Op::Merge(points, days) => {
                        let mut loser = Ledger::default();
                        if points > 0 {
                            loser.credit(Credit::Earn, points, now, now + chrono::Duration::days(days), "l").unwrap();
                        } else if points < 0 {
                            loser.debit_adjustment(-points, now, "l").unwrap();
                        }
                        ledger.absorb(&mut loser, now, "merge").unwrap();
                        model_balance += points;
                        prop_assert_eq!(loser.balance(), 0);
                    }
                    Op::Tick(days) => now += chrono::Duration::days(days),
                }
                prop_assert_eq!(ledger.balance(), model_balance);
                check_invariants(&ledger);
            }
        }

        /// Amounts anywhere in `i64`, and near every bound: a change within the bounds is applied
        /// exactly, any other is refused and changes nothing; nothing wraps (tests run with
        /// overflow checks, so a wrap would panic).
        #[test]
        fn extreme_amounts_are_applied_exactly_or_refused(
            ops in proptest::collection::vec((0u8..4, extreme_points()), 1..40),
        ) {
            let mut ledger = Ledger::default();
            let mut model = 0i128;
            let now = day(0);
            for (kind, points) in ops {
                let before = ledger.clone();
                let (result, delta) = match kind {
                    0 => (ledger.credit(Credit::Adjust, points, now, day(400), "adjust").map(drop), i128::from(points)),
                    1 => (ledger.debit_adjustment(points, now, "adjust"), -i128::from(points)),
                    2 => (ledger.reverse(points, now, "order"), -i128::from(points)),
                    _ => (ledger.redeem(points, now, "till"), -i128::from(points)),
                };
                let within = (1..=MAX_POINTS_PER_CHANGE).contains(&points)
                    && (model + delta).abs() <= i128::from(MAX_BALANCE)
                    && (kind != 3 || i128::from(points) <= i128::from(before.available()));
                prop_assert_eq!(result.is_ok(), within, "{:?} of {}", kind, points);
                if within {
                    model += delta;
                } else {
                    prop_assert_eq!(&ledger, &before, "a refused change changes nothing");
                }
                prop_assert_eq!(i128::from(ledger.balance()), model);
                check_invariants(&ledger);
            }
        }
    }

    fn extreme_points() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(-1),
            Just(MAX_POINTS_PER_CHANGE),
            Just(MAX_POINTS_PER_CHANGE + 1),
            (MAX_POINTS_PER_CHANGE - 3)..=MAX_POINTS_PER_CHANGE,
            any::<i64>(),
            1i64..1_000,
        ]
    }

    #[test]
    fn a_merge_past_i64_is_refused_and_moves_nothing() {
        let mut survivor = Ledger::restore(i64::MAX - 5, Vec::new(), Vec::new(), Vec::new(), 0);
        let mut loser = Ledger::restore(10, Vec::new(), Vec::new(), Vec::new(), 0);
        assert_eq!(
            survivor.absorb(&mut loser, day(0), "merge"),
            Err(LedgerError::MergeOverflow)
        );
        assert_eq!((survivor.balance(), loser.balance()), (i64::MAX - 5, 10));
    }
}

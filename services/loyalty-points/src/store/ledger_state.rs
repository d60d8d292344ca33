//! An account's open lots and holds, kept in its row as one encoded value: loading or saving an
//! account is one statement whatever its number of lots, and a member crediting all day from
//! many tills does not make each sale read and write a row per lot.

use chrono::{DateTime, Utc};

use crate::domain::ledger::{EndedHold, Hold, HoldEnd, Lot};

#[derive(Clone, PartialEq, prost::Message)]
struct State {
    #[prost(message, repeated, tag = "1")]
    lots: Vec<StoredLot>,
    #[prost(message, repeated, tag = "2")]
    holds: Vec<StoredHold>,
    #[prost(message, repeated, tag = "3")]
    ended_holds: Vec<StoredEndedHold>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredEndedHold {
    #[prost(uint64, tag = "1")]
    id: u64,
    /// 1 confirmed, 2 released, 3 expired.
    #[prost(int32, tag = "2")]
    end: i32,
    #[prost(int64, tag = "3")]
    at_us: i64,
}

const ENDS: [(HoldEnd, i32); 3] = [(HoldEnd::Confirmed, 1), (HoldEnd::Released, 2), (HoldEnd::Expired, 3)];

/// What an account's row holds of its ledger beside its balance.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LedgerState {
    pub lots: Vec<Lot>,
    pub holds: Vec<Hold>,
    pub ended_holds: Vec<EndedHold>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredLot {
    #[prost(uint64, tag = "1")]
    id: u64,
    /// Microseconds since the Unix epoch, as PostgreSQL keeps timestamps.
    #[prost(int64, tag = "2")]
    earned_at_us: i64,
    #[prost(int64, tag = "3")]
    expires_at_us: i64,
    #[prost(int64, tag = "4")]
    original: i64,
    #[prost(int64, tag = "5")]
    remaining: i64,
    #[prost(string, tag = "6")]
    reference: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredHold {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    amount: i64,
    #[prost(int64, tag = "3")]
    expires_at_us: i64,
    #[prost(string, tag = "4")]
    reference: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Encoding(#[from] prost::DecodeError),
    #[error("timestamp {0} µs is out of range")]
    Time(i64),
    #[error("{0} is not how a hold ends")]
    HoldEnd(i32),
}

fn time(micros: i64) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::from_timestamp_micros(micros).ok_or(DecodeError::Time(micros))
}

/// Encodes the lots still holding points (spent and expired ones are history: the entries keep
/// it), the open holds and the latest that ended.
pub fn encode(lots: &[Lot], holds: &[Hold], ended_holds: &[EndedHold]) -> Vec<u8> {
    let state = State {
        lots: lots
            .iter()
            .filter(|lot| lot.remaining > 0)
            .map(|lot| StoredLot {
                id: lot.id,
                earned_at_us: lot.earned_at.timestamp_micros(),
                expires_at_us: lot.expires_at.timestamp_micros(),
                original: lot.original,
                remaining: lot.remaining,
                reference: lot.reference.clone(),
            })
            .collect(),
        holds: holds
            .iter()
            .map(|hold| StoredHold {
                id: hold.id,
                amount: hold.amount,
                expires_at_us: hold.expires_at.timestamp_micros(),
                reference: hold.reference.clone(),
            })
            .collect(),
        ended_holds: ended_holds
            .iter()
            .map(|ended| StoredEndedHold {
                id: ended.id,
                end: ENDS
                    .iter()
                    .find(|(end, _)| *end == ended.end)
                    .map_or(0, |(_, code)| *code),
                at_us: ended.at.timestamp_micros(),
            })
            .collect(),
    };
    prost::Message::encode_to_vec(&state)
}

/// What `encode` stored; nothing stored means none.
pub fn decode(bytes: &[u8]) -> Result<LedgerState, DecodeError> {
    let state: State = prost::Message::decode(bytes)?;
    let lots = state
        .lots
        .into_iter()
        .map(|lot| {
            Ok(Lot {
                id: lot.id,
                earned_at: time(lot.earned_at_us)?,
                expires_at: time(lot.expires_at_us)?,
                original: lot.original,
                remaining: lot.remaining,
                reference: lot.reference,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    let holds = state
        .holds
        .into_iter()
        .map(|hold| {
            Ok(Hold {
                id: hold.id,
                amount: hold.amount,
                expires_at: time(hold.expires_at_us)?,
                reference: hold.reference,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    let ended_holds = state
        .ended_holds
        .into_iter()
        .map(|ended| {
            let end = ENDS
                .iter()
                .find(|(_, code)| *code == ended.end)
                .map(|(end, _)| *end)
                .ok_or(DecodeError::HoldEnd(ended.end))?;
            Ok(EndedHold {
                id: ended.id,
                end,
                at: time(ended.at_us)?,
            })
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(LedgerState {
        lots,
        holds,
        ended_holds,
    })
}

/// When the account next needs settling without anyone touching it: its soonest lot expiry or
/// hold lapse (the background sweep finds accounts by it).
pub fn next_due(lots: &[Lot], holds: &[Hold]) -> Option<DateTime<Utc>> {
    let lots = lots.iter().filter(|lot| lot.remaining > 0).map(|lot| lot.expires_at);
    let holds = holds.iter().map(|hold| hold.expires_at);
    lots.chain(holds).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_lots_and_holds_survive_a_round_trip() {
        let at = DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap();
        let lot = |id, remaining| Lot {
            id,
            earned_at: at,
            expires_at: at + chrono::Duration::days(i64::try_from(id).unwrap_or_default()),
            original: 100,
            remaining,
            reference: format!("order-{id}"),
        };
        let hold = Hold {
            id: 4,
            amount: 30,
            expires_at: at + chrono::Duration::minutes(15),
            reference: "till-7".into(),
        };
        let ended = EndedHold {
            id: 5,
            end: HoldEnd::Expired,
            at,
        };
        let bytes = encode(
            &[lot(1, 0), lot(2, 60), lot(3, 100)],
            std::slice::from_ref(&hold),
            std::slice::from_ref(&ended),
        );
        let state = decode(&bytes).unwrap();
        assert_eq!(state.lots, vec![lot(2, 60), lot(3, 100)], "the spent lot is not kept");
        assert_eq!(state.holds, vec![hold]);
        assert_eq!(state.ended_holds, vec![ended]);
        assert_eq!(decode(&[]).unwrap(), LedgerState::default());
        assert!(decode(&[0xff, 0xff]).is_err());
    }
}

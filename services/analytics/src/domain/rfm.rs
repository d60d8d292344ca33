//! RFM segments: each buying member recent or not, frequent or not, high-spending or not, split
//! at thresholds given or at the buyers' medians.

use quanyu_proto::analytics::v1 as pb;

/// What one member did in the 365 days read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buyer {
    /// Days from the last purchase to the day asked.
    pub recency_days: i64,
    pub purchases: i64,
    pub spend_minor: i64,
}

/// Where the segments split: recent at most `recency_days`, frequent from `purchases`,
/// high-spending from `spend_minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub recency_days: i64,
    pub purchases: i64,
    pub spend_minor: i64,
}

impl Thresholds {
    /// The thresholds asked for, each unset one (0) the buyers' median.
    pub fn asked_or_median(asked: Option<&pb::RfmThresholds>, buyers: &[Buyer]) -> Self {
        let asked = asked.cloned().unwrap_or_default();
        let or_median = |value: i64, of: fn(&Buyer) -> i64| {
            if value > 0 {
                value
            } else {
                median(buyers.iter().map(of).collect())
            }
        };
        Self {
            recency_days: or_median(i64::from(asked.recency_days), |buyer| buyer.recency_days),
            purchases: or_median(asked.purchases, |buyer| buyer.purchases),
            spend_minor: or_median(asked.spend_minor, |buyer| buyer.spend_minor),
        }
    }
}

/// The middle value (the lower of the two middle ones for an even count); 0 of none.
fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    values.get(values.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

/// The segment a buyer falls in.
pub fn segment(buyer: &Buyer, thresholds: &Thresholds) -> pb::RfmSegment {
    use pb::RfmSegment as S;
    let recent = buyer.recency_days <= thresholds.recency_days;
    let frequent = buyer.purchases >= thresholds.purchases;
    let high_spending = buyer.spend_minor >= thresholds.spend_minor;
    match (high_spending, recent, frequent) {
        (true, true, true) => S::ImportantValue,
        (true, true, false) => S::ImportantDevelopment,
        (true, false, true) => S::ImportantRetention,
        (true, false, false) => S::ImportantWinback,
        (false, true, true) => S::GeneralValue,
        (false, true, false) => S::GeneralDevelopment,
        (false, false, true) => S::GeneralRetention,
        (false, false, false) => S::GeneralWinback,
    }
}

/// Members and their spend per segment, every segment in the enum's order.
pub fn segments(buyers: &[Buyer], thresholds: &Thresholds) -> Vec<pb::RfmSegmentCount> {
    let mut counts: Vec<pb::RfmSegmentCount> = (1..)
        .map_while(|value| pb::RfmSegment::try_from(value).ok())
        .map(|segment| pb::RfmSegmentCount {
            segment: segment.into(),
            members: 0,
            spend_minor: 0,
        })
        .collect();
    for buyer in buyers {
        let index = usize::try_from(segment(buyer, thresholds) as i32 - 1).unwrap_or(0);
        if let Some(count) = counts.get_mut(index) {
            count.members += 1;
            count.spend_minor += buyer.spend_minor;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn each_side_of_each_threshold_makes_a_segment() {
        let thresholds = Thresholds {
            recency_days: 30,
            purchases: 3,
            spend_minor: 10_000,
        };
        let buyer = |recency_days, purchases, spend_minor| Buyer {
            recency_days,
            purchases,
            spend_minor,
        };
        assert_eq!(
            segment(&buyer(30, 3, 10_000), &thresholds),
            pb::RfmSegment::ImportantValue
        );
        assert_eq!(
            segment(&buyer(31, 3, 10_000), &thresholds),
            pb::RfmSegment::ImportantRetention
        );
        assert_eq!(
            segment(&buyer(1, 2, 10_000), &thresholds),
            pb::RfmSegment::ImportantDevelopment
        );
        assert_eq!(
            segment(&buyer(90, 1, 9_999), &thresholds),
            pb::RfmSegment::GeneralWinback
        );
        assert_eq!(median(vec![5, 1, 3, 2]), 2);
        assert_eq!(median(Vec::new()), 0);
        let medians = Thresholds::asked_or_median(
            Some(&pb::RfmThresholds {
                recency_days: 7,
                ..Default::default()
            }),
            &[buyer(1, 1, 100), buyer(50, 4, 300), buyer(9, 2, 200)],
        );
        assert_eq!(
            medians,
            Thresholds {
                recency_days: 7,
                purchases: 2,
                spend_minor: 200
            }
        );
    }

    proptest! {
        /// Every buyer falls in exactly one segment, with all of their spend.
        #[test]
        fn segments_partition_the_buyers(
            buyers in proptest::collection::vec((0i64..400, 1i64..20, -1_000i64..100_000), 0..60),
        ) {
            let buyers: Vec<Buyer> = buyers
                .into_iter()
                .map(|(recency_days, purchases, spend_minor)| Buyer { recency_days, purchases, spend_minor })
                .collect();
            let thresholds = Thresholds::asked_or_median(None, &buyers);
            let counts = segments(&buyers, &thresholds);
            prop_assert_eq!(counts.len(), 8);
            prop_assert_eq!(counts.iter().map(|count| count.members).sum::<i64>(), i64::try_from(buyers.len()).unwrap());
            prop_assert_eq!(
                counts.iter().map(|count| count.spend_minor).sum::<i64>(),
                buyers.iter().map(|buyer| buyer.spend_minor).sum::<i64>()
            );
        }
    }
}

//! A refund's share of each line of the sale it refunds.

/// Splits `amount` over lines in proportion to their amounts, so that the parts add up to
/// exactly `amount`: each part is rounded toward zero, and what rounding left over goes one unit
/// at a time to the largest lines first. Lines of no positive total take nothing.
pub fn split(amount: i64, lines: &[i64]) -> Vec<i64> {
    let total: i128 = lines.iter().map(|line| i128::from((*line).max(0))).sum();
    if total == 0 {
        return vec![0; lines.len()];
    }
    let mut parts: Vec<i64> = lines
        .iter()
        .map(|line| {
            let share = i128::from(amount) * i128::from((*line).max(0)) / total;
            i64::try_from(share).unwrap_or(0)
        })
        .collect();
    let mut left = amount - parts.iter().sum::<i64>();
    let mut largest: Vec<usize> = (0..lines.len()).filter(|&index| lines[index] > 0).collect();
    largest.sort_by_key(|&index| std::cmp::Reverse(lines[index]));
    for index in largest.into_iter().cycle() {
        if left == 0 {
            break;
        }
        parts[index] += left.signum();
        left -= left.signum();
    }
    parts
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_refund_is_shared_by_the_lines_it_came_from() {
        assert_eq!(split(300, &[100, 200]), [100, 200]);
        assert_eq!(split(100, &[1, 1, 1]), [34, 33, 33]);
        assert_eq!(split(-100, &[1, 1, 1]), [-34, -33, -33]);
        assert_eq!(split(50, &[0, 0]), [0, 0]);
    }

    proptest! {
        /// The parts add up to the amount, and none is further than one unit from its
        /// proportional share.
        #[test]
        fn parts_add_up_and_stay_proportional(
            amount in -10_000_000i64..10_000_000,
            lines in proptest::collection::vec(1i64..1_000_000, 1..8),
        ) {
            let parts = split(amount, &lines);
            prop_assert_eq!(parts.iter().sum::<i64>(), amount);
            let total: i64 = lines.iter().sum();
            for (part, line) in parts.iter().zip(&lines) {
                #[allow(clippy::cast_precision_loss)]
                let exact = amount as f64 * *line as f64 / total as f64;
                #[allow(clippy::cast_precision_loss)]
                let off = (*part as f64 - exact).abs();
                prop_assert!(off < 1.0 + 1e-6, "{} for {}", part, exact);
            }
        }
    }
}

//! `quanyu report`: analytics' figures as tables, JSON or CSV, and as charts.

mod chart;

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{Datelike as _, Duration, NaiveDate};
use quanyu_proto::analytics::v1 as pb;
use quanyu_proto::common::v1::Channel;
use serde_json::{Value, json};

use crate::call;
use crate::client::{AnalyticsClient, ClientArgs};
use crate::names;
use crate::output::Output;

#[derive(clap::Subcommand)]
pub enum ReportCommand {
    /// The FAST figures over time: one point per period of --step days.
    Fast {
        #[command(flatten)]
        window: Window,
        /// Days per period (7: weekly Advancing and Thriving).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..=366))]
        step: u16,
        #[command(flatten)]
        chart: ChartArgs,
    },
    /// Operating metrics over one window (every metric unless --metric names some).
    Metrics {
        #[command(flatten)]
        window: Window,
        /// A metric by its name without prefix: new_members, member_share_of_sales, …
        #[arg(long = "metric", value_parser = parse_metric)]
        metrics: Vec<pb::Metric>,
        /// For top_members_share_of_spend and fast_high_value_members: 1-100.
        #[arg(long, default_value_t = 20)]
        top_percent: i32,
    },
    /// Members who bought on each pair of channels in the window.
    Overlap {
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        chart: ChartArgs,
    },
    /// Retention of each month's new members in the months after.
    Cohorts {
        /// The first month of enrolment, 2026-01; default five months before --to-month.
        #[arg(long, value_parser = parse_month)]
        from_month: Option<NaiveDate>,
        /// The last month of enrolment; default this month.
        #[arg(long, value_parser = parse_month)]
        to_month: Option<NaiveDate>,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        chart: ChartArgs,
    },
    /// Consumers by AIPL stage on the window's first day and on its last.
    Flow {
        #[command(flatten)]
        window: Window,
        #[command(flatten)]
        chart: ChartArgs,
    },
    /// What campaigns and coupon templates achieved.
    Campaign {
        /// Campaign ids.
        campaign_ids: Vec<String>,
        /// Coupon template ids.
        #[arg(long = "template")]
        templates: Vec<String>,
    },
}

#[derive(clap::Args)]
pub struct FilterArgs {
    #[arg(long, default_value = "")]
    brand: String,
    /// tmall, jd, douyin, wechat_mall, store, other.
    #[arg(long, value_parser = parse_channel)]
    channel: Option<Channel>,
    #[arg(long, default_value = "")]
    store: String,
}

impl FilterArgs {
    fn filter(&self) -> Option<pb::Filter> {
        Some(pb::Filter {
            brand_id: self.brand.clone(),
            channel: self.channel.map_or(0, Into::into),
            store_id: self.store.clone(),
            ..Default::default()
        })
    }
}

#[derive(clap::Args)]
pub struct Window {
    /// The first day, 2026-11-01; default 29 days before --to.
    #[arg(long)]
    from: Option<NaiveDate>,
    /// The last day; default today (UTC).
    #[arg(long)]
    to: Option<NaiveDate>,
    #[command(flatten)]
    filter: FilterArgs,
}

impl Window {
    fn days(&self) -> anyhow::Result<(NaiveDate, NaiveDate)> {
        let to = self.to.unwrap_or_else(|| chrono::Utc::now().date_naive());
        let from = self.from.unwrap_or(to - Duration::days(29));
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
        Ok((from, to))
    }
}

#[derive(clap::Args)]
pub struct ChartArgs {
    /// Also draw the report: FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
}

impl ChartArgs {
    fn draw(&self, drawing: &impl chart::Drawing) -> anyhow::Result<()> {
        match &self.chart {
            Some(path) => {
                let canvas = chart::Canvas::for_path(path)?;
                canvas
                    .render(drawing)
                    .with_context(|| format!("drawing {}", path.display()))?;
                eprintln!("chart written to {}", path.display());
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn parse_metric(text: &str) -> Result<pb::Metric, String> {
    names::parse(text, "METRIC_", pb::Metric::from_str_name).ok_or_else(|| {
        format!(
            "unknown metric `{text}`: {}",
            every_metric()
                .iter()
                .map(|metric| metric_name(*metric))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn parse_channel(text: &str) -> Result<Channel, String> {
    names::parse(text, "CHANNEL_", Channel::from_str_name)
        .ok_or_else(|| format!("unknown channel `{text}`: tmall, jd, douyin, wechat_mall, store, other"))
}

fn parse_month(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a month such as 2026-01"))
}

fn every_metric() -> Vec<pb::Metric> {
    (1..).map_while(|number| pb::Metric::try_from(number).ok()).collect()
}

fn metric_name(metric: pb::Metric) -> String {
    names::short(metric.as_str_name(), "METRIC_")
}

fn channel_name(channel: i32) -> String {
    names::short(Channel::try_from(channel).unwrap_or_default().as_str_name(), "CHANNEL_")
}

fn stage_name(stage: i32) -> String {
    match pb::AiplStage::try_from(stage).unwrap_or_default() {
        pb::AiplStage::Unspecified => "none".to_owned(),
        stage => names::short(stage.as_str_name(), "AIPL_STAGE_"),
    }
}

/// A rate rounded for people and machines alike: four decimals.
fn rate(value: f64) -> Value {
    json!((value * 10_000.0).round() / 10_000.0)
}

/// The FAST figures at the end of each period of `step` days from `from` to `to`.
pub async fn fast(
    analytics: &mut AnalyticsClient,
    (from, to): (NaiveDate, NaiveDate),
    step: u16,
    filter: Option<pb::Filter>,
) -> anyhow::Result<(Output, Vec<chart::FastPoint>)> {
    let step = Duration::days(i64::from(step));
    let mut output = Output::rows(&[
        "period_end",
        "fertility",
        "advancing",
        "members",
        "high_value",
        "thriving",
    ]);
    let mut trend = Vec::new();
    let mut end = (from + step - Duration::days(1)).min(to);
    loop {
        let asked = pb::GetMetricsRequest {
            metrics: quanyu_analytics::app::metrics::FAST
                .iter()
                .map(|&metric| metric.into())
                .collect(),
            start_date: (end - step + Duration::days(1)).to_string(),
            end_date: end.to_string(),
            filter: filter.clone(),
            ..Default::default()
        };
        let values = call!(analytics, get_metrics, asked)?.values;
        let [fertility, advancing, members, high_value, thriving] = <[pb::MetricValue; 5]>::try_from(values)
            .map_err(|values| anyhow::anyhow!("GetMetrics answered {} values for 5 metrics", values.len()))?;
        output.push(vec![
            json!(end.to_string()),
            json!(fertility.numerator),
            rate(advancing.value),
            json!(members.numerator),
            rate(high_value.value),
            rate(thriving.value),
        ]);
        trend.push(chart::FastPoint {
            day: end,
            fertility: fertility.numerator,
            members: members.numerator,
            advancing: advancing.value,
            high_value: high_value.value,
            thriving: thriving.value,
        });
        if end >= to {
            return Ok((output, trend));
        }
        end = (end + step).min(to);
    }
}

pub async fn run(client: &ClientArgs, command: ReportCommand) -> anyhow::Result<Output> {
    let mut analytics = client.connect()?.analytics().await?;
    match command {
        ReportCommand::Fast { window, step, chart } => {
            let (from, to) = window.days()?;
            let (output, trend) = fast(&mut analytics, (from, to), step, window.filter.filter()).await?;
            chart.draw(&chart::FastTrend(&trend))?;
            Ok(output)
        }
        ReportCommand::Metrics {
            window,
            metrics,
            top_percent,
        } => {
            let (from, to) = window.days()?;
            let metrics = if metrics.is_empty() { every_metric() } else { metrics };
            let asked = pb::GetMetricsRequest {
                metrics: metrics.iter().map(|&metric| metric.into()).collect(),
                start_date: from.to_string(),
                end_date: to.to_string(),
                filter: window.filter.filter(),
                top_percent,
                ..Default::default()
            };
            let mut output = Output::rows(&["metric", "numerator", "denominator", "value"]);
            for value in call!(analytics, get_metrics, asked)?.values {
                output.push(vec![
                    json!(metric_name(value.metric())),
                    json!(value.numerator),
                    json!(value.denominator),
                    rate(value.value),
                ]);
            }
            Ok(output)
        }
        ReportCommand::Overlap { window, chart } => {
            let (from, to) = window.days()?;
            let asked = pb::GetChannelOverlapRequest {
                start_date: from.to_string(),
                end_date: to.to_string(),
                filter: window.filter.filter(),
            };
            let overlaps = call!(analytics, get_channel_overlap, asked)?.overlaps;
            let mut output = Output::rows(&["channel", "other_channel", "members"]);
            let mut cells = Vec::new();
            for overlap in &overlaps {
                let (channel, other) = (channel_name(overlap.channel), channel_name(overlap.other_channel));
                output.push(vec![json!(channel), json!(other), json!(overlap.members)]);
                cells.push((channel, other, overlap.members));
            }
            chart.draw(&chart::HeatMap {
                title: "Members who bought on both channels",
                cells: &cells,
                symmetric: true,
            })?;
            Ok(output)
        }
        ReportCommand::Cohorts {
            from_month,
            to_month,
            filter,
            chart,
        } => {
            let today = chrono::Utc::now().date_naive();
            let to = to_month.unwrap_or_else(|| today.with_day(1).unwrap_or(today));
            let from = from_month.unwrap_or_else(|| to.checked_sub_months(chrono::Months::new(5)).unwrap_or(to));
            anyhow::ensure!(from <= to, "--from-month is after --to-month");
            let asked = pb::GetCohortsRequest {
                start_month: from.format("%Y-%m").to_string(),
                end_month: to.format("%Y-%m").to_string(),
                filter: filter.filter(),
            };
            let cohorts = call!(analytics, get_cohorts, asked)?.cohorts;
            let months = cohorts.iter().map(|cohort| cohort.retained.len()).max().unwrap_or(0);
            let mut columns = vec!["month".to_owned(), "members".to_owned()];
            columns.extend((0..months).map(|month| format!("m{month}")));
            let mut output = Output::rows(&columns.iter().map(String::as_str).collect::<Vec<_>>());
            let mut triangle = Vec::new();
            for cohort in &cohorts {
                let rates: Vec<f64> = cohort
                    .retained
                    .iter()
                    .map(|&retained| {
                        if cohort.members == 0 {
                            0.0
                        } else {
                            retained as f64 / cohort.members as f64
                        }
                    })
                    .collect();
                let mut row = vec![json!(cohort.month), json!(cohort.members)];
                row.extend((0..months).map(|month| rates.get(month).map_or(Value::Null, |&value| rate(value))));
                output.push(row);
                triangle.push((cohort.month.clone(), rates));
            }
            chart.draw(&chart::CohortTriangle(&triangle))?;
            Ok(output)
        }
        ReportCommand::Flow { window, chart } => {
            let (from, to) = window.days()?;
            let asked = pb::GetStageFlowRequest {
                start_date: from.to_string(),
                end_date: to.to_string(),
                filter: window.filter.filter(),
                windows: None,
            };
            let flow = call!(analytics, get_stage_flow, asked)?;
            let mut output = Output::rows(&["from_stage", "to_stage", "consumers"]);
            let mut cells = Vec::new();
            for step in &flow.flows {
                let (from_stage, to_stage) = (stage_name(step.from_stage), stage_name(step.to_stage));
                output.push(vec![json!(from_stage), json!(to_stage), json!(step.consumers)]);
                cells.push((from_stage, to_stage, step.consumers));
            }
            let title = format!("AIPL stage on {from} (rows) and on {to} (columns)");
            chart.draw(&chart::HeatMap {
                title: &title,
                cells: &cells,
                symmetric: false,
            })?;
            Ok(output)
        }
        ReportCommand::Campaign {
            campaign_ids,
            templates,
        } => {
            anyhow::ensure!(
                !campaign_ids.is_empty() || !templates.is_empty(),
                "name a campaign id or a --template"
            );
            let asked = pb::GetCampaignResultsRequest {
                campaign_ids,
                coupon_template_ids: templates,
            };
            let results = call!(analytics, get_campaign_results, asked)?;
            let mut output = Output::rows(&[
                "id",
                "of",
                "members_reached",
                "rewards",
                "points_granted",
                "coupons_issued",
                "coupons_redeemed",
                "coupons_restored",
                "redemption_rate",
                "invitees",
                "invitees_qualified",
                "k_factor",
            ]);
            let of_each = [("campaign", results.campaigns), ("template", results.coupon_templates)];
            for (of, result) in of_each
                .iter()
                .flat_map(|(of, results)| results.iter().map(move |result| (of, result)))
            {
                output.push(vec![
                    json!(result.id),
                    json!(of),
                    json!(result.members_reached),
                    json!(result.rewards),
                    json!(result.points_granted),
                    json!(result.coupons_issued),
                    json!(result.coupons_redeemed),
                    json!(result.coupons_restored),
                    rate(result.redemption_rate),
                    json!(result.invitees),
                    json!(result.invitees_qualified),
                    rate(result.k_factor),
                ]);
            }
            Ok(output)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_proto_names_without_prefix() {
        assert_eq!(parse_metric("fast_fertility"), Ok(pb::Metric::FastFertility));
        assert!(
            parse_metric("fertility")
                .unwrap_err()
                .contains("new_members, member_share_of_sales")
        );
        assert_eq!(every_metric().len(), 15);
        assert_eq!(parse_channel("wechat_mall"), Ok(Channel::WechatMall));
        assert_eq!(stage_name(0), "none");
        assert_eq!(
            parse_month("2026-02"),
            NaiveDate::from_ymd_opt(2026, 2, 1).ok_or_else(String::new)
        );
        assert!(parse_month("2026-13").is_err());
    }
}

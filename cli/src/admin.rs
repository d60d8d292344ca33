//! Everyday calls: a member, their points, their coupons.

use clap::Subcommand;
use quanyu_proto::campaign::v1 as campaign_pb;
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::points::v1 as points_pb;
use serde_json::{Value, json};

use crate::call;
use crate::client::ClientArgs;
use crate::names;
use crate::output::{Output, timestamp};

#[derive(Subcommand)]
pub enum MemberCommand {
    /// A member: status, identities, enrolment.
    Get { member_id: String },
    /// Finds the members of identities written KIND:VALUE or KIND/NAMESPACE:VALUE
    /// (phone:13800138000, wechat_openid/wx-app:o6_bmj…, pos_card:C123).
    Resolve {
        #[arg(required = true, value_parser = parse_identity)]
        identities: Vec<identity_pb::Identity>,
    },
    /// Merges two members into one; the one enrolled first survives unless --survivor says.
    Merge {
        member_id: String,
        other_member_id: String,
        #[arg(long)]
        survivor: Option<String>,
    },
    /// Erases a member's personal data (their counts and points stay, anonymous).
    Erase {
        member_id: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum PointsCommand {
    /// A member's balance, tier and the points that expire soonest.
    Balance {
        member_id: String,
        /// The program; the tenant-wide one when absent.
        #[arg(long, default_value = "")]
        program: String,
    },
    /// A member's ledger entries, newest first.
    History {
        member_id: String,
        #[arg(long, default_value = "")]
        program: String,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand)]
pub enum CouponCommand {
    /// A member's coupons.
    List {
        member_id: String,
        /// Only coupons in this state (available, redeemed, void, expired).
        #[arg(long, value_parser = parse_coupon_state)]
        state: Option<campaign_pb::CouponState>,
    },
    /// One coupon by its code.
    Get { code: String },
    /// Gives a member a coupon of a template; the same --key again answers the same coupon.
    Issue {
        template_id: String,
        member_id: String,
        #[arg(long)]
        key: String,
    },
    /// Voids a coupon that has not been redeemed.
    Void {
        code: String,
        #[arg(long)]
        reason: String,
    },
}

/// `KIND:VALUE` or `KIND/NAMESPACE:VALUE`, the kind as the proto names it without its prefix.
pub fn parse_identity(text: &str) -> Result<identity_pb::Identity, String> {
    let (kind, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not KIND:VALUE (phone:13800138000)"))?;
    let (kind, namespace) = kind.split_once('/').unwrap_or((kind, ""));
    let kind = names::parse(kind, "IDENTITY_KIND_", identity_pb::IdentityKind::from_str_name).ok_or_else(|| {
        format!(
            "unknown identity kind `{kind}`: phone, email, wechat_unionid, wechat_openid, tmall_ouid, \
                 phone_hash, jd_pin, douyin_openid, pos_card, external"
        )
    })?;
    Ok(identity_pb::Identity {
        kind: kind.into(),
        value: value.to_owned(),
        namespace: namespace.to_owned(),
    })
}

fn parse_coupon_state(text: &str) -> Result<campaign_pb::CouponState, String> {
    names::parse(text, "COUPON_STATE_", campaign_pb::CouponState::from_str_name)
        .ok_or_else(|| format!("unknown coupon state `{text}`: available, redeemed, void, expired"))
}

fn identity_text(identity: &identity_pb::Identity) -> String {
    let kind = names::short(identity.kind().as_str_name(), "IDENTITY_KIND_");
    match identity.namespace.as_str() {
        "" => format!("{kind}:{}", identity.value),
        namespace => format!("{kind}/{namespace}:{}", identity.value),
    }
}

fn member_output(member: &identity_pb::Member) -> Output {
    let profile = member.profile.clone().unwrap_or_default();
    let enrollment = member.enrollment.clone().unwrap_or_default();
    let identities: Vec<String> = member.identities.iter().map(identity_text).collect();
    let tags: Vec<String> = member
        .tags
        .iter()
        .map(|tag| match tag.value.as_str() {
            "" => tag.name.clone(),
            value => format!("{}={value}", tag.name),
        })
        .collect();
    Output::record(vec![
        ("member_id", json!(member.member_id)),
        (
            "status",
            json!(names::short(member.status().as_str_name(), "MEMBER_STATUS_")),
        ),
        ("merged_into", json!(member.merged_into)),
        ("name", json!(profile.name)),
        ("city", json!(profile.city)),
        ("identities", json!(identities.join(" "))),
        ("tags", json!(tags.join(" "))),
        (
            "channel",
            json!(names::short(enrollment.channel().as_str_name(), "CHANNEL_")),
        ),
        ("brand", json!(enrollment.brand_id)),
        ("store", json!(enrollment.store_id)),
        ("guide", json!(enrollment.guide_id)),
        ("enrolled_at", timestamp(member.enrolled_at.as_ref())),
    ])
}

pub async fn member(args: &ClientArgs, command: MemberCommand) -> anyhow::Result<Output> {
    let mut identity = args.connect()?.identity().await?;
    Ok(match command {
        MemberCommand::Get { member_id } => {
            let found = call!(identity, get_member, identity_pb::GetMemberRequest { member_id })?;
            member_output(&found.member.unwrap_or_default())
        }
        MemberCommand::Resolve { identities } => {
            let resolved = call!(
                identity,
                resolve_identities,
                identity_pb::ResolveIdentitiesRequest { identities }
            )?;
            let mut output = Output::rows(&["identity", "outcome", "member_id", "error"]);
            for resolution in resolved.resolutions {
                output.push(vec![
                    json!(identity_text(&resolution.identity.clone().unwrap_or_default())),
                    json!(names::short(resolution.outcome().as_str_name(), "RESOLVE_OUTCOME_")),
                    json!(resolution.member_id),
                    json!(resolution.error),
                ]);
            }
            output
        }
        MemberCommand::Merge {
            member_id,
            other_member_id,
            survivor,
        } => {
            let merged = call!(
                identity,
                merge_members,
                identity_pb::MergeMembersRequest {
                    member_id,
                    other_member_id,
                    survivor_id: survivor.unwrap_or_default(),
                }
            )?;
            let survivor = merged.survivor.unwrap_or_default();
            Output::record(vec![
                ("survivor", json!(survivor.member_id)),
                ("merged_member_id", json!(merged.merged_member_id)),
                ("already_merged", json!(merged.already_merged)),
            ])
        }
        MemberCommand::Erase { member_id, reason } => {
            let erased = call!(
                identity,
                erase_member,
                identity_pb::EraseMemberRequest { member_id, reason }
            )?;
            member_output(&erased.member.unwrap_or_default())
        }
    })
}

fn account(member_id: String, program_id: String) -> Option<points_pb::AccountRef> {
    Some(points_pb::AccountRef { member_id, program_id })
}

pub async fn points(args: &ClientArgs, command: PointsCommand) -> anyhow::Result<Output> {
    let mut points = args.connect()?.points().await?;
    Ok(match command {
        PointsCommand::Balance { member_id, program } => {
            let read = call!(
                points,
                get_balance,
                points_pb::GetBalanceRequest {
                    account: account(member_id, program),
                }
            )?;
            let balance = read.balance.unwrap_or_default();
            let soonest = balance.expiring.first();
            Output::record(vec![
                ("member_id", json!(balance.member_id)),
                ("program", json!(balance.program_id)),
                ("balance", json!(balance.balance)),
                ("available", json!(balance.available)),
                ("held", json!(balance.held)),
                ("tier", json!(balance.tier)),
                ("growth_lifetime", json!(balance.growth_lifetime)),
                (
                    "next_expiry",
                    timestamp(soonest.and_then(|lot| lot.expires_at.as_ref())),
                ),
                ("next_expiry_points", json!(soonest.map_or(0, |lot| lot.points))),
            ])
        }
        PointsCommand::History {
            member_id,
            program,
            limit,
        } => {
            let mut output = Output::rows(&["at", "kind", "points", "balance_after", "reference"]);
            let mut page_token = String::new();
            let mut listed = 0;
            while listed < limit {
                let page = call!(
                    points,
                    list_entries,
                    points_pb::ListEntriesRequest {
                        account: account(member_id.clone(), program.clone()),
                        page_size: i32::try_from((limit - listed).min(1000)).unwrap_or(1000),
                        page_token: page_token.clone(),
                        ..Default::default()
                    }
                )?;
                for entry in page.entries.iter().take(limit - listed) {
                    output.push(vec![
                        timestamp(entry.at.as_ref()),
                        json!(names::short(entry.kind().as_str_name(), "ENTRY_KIND_")),
                        json!(entry.points),
                        json!(entry.balance_after),
                        json!(entry.reference),
                    ]);
                    listed += 1;
                }
                if page.next_page_token.is_empty() || page.entries.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            output
        }
    })
}

const COUPON_COLUMNS: &[&str] = &["code", "template", "member_id", "state", "valid_until", "order"];

fn coupon_row(coupon: &campaign_pb::Coupon) -> Vec<Value> {
    let order = match coupon.order_id.as_str() {
        "" => String::new(),
        id => format!("{}/{id}", coupon.order_source),
    };
    vec![
        json!(coupon.code),
        json!(coupon.template_id),
        json!(coupon.member_id),
        json!(names::short(coupon.state().as_str_name(), "COUPON_STATE_")),
        timestamp(coupon.valid_until.as_ref()),
        json!(order),
    ]
}

fn one_coupon(coupon: Option<campaign_pb::Coupon>) -> Output {
    let coupon = coupon.unwrap_or_default();
    Output::record(COUPON_COLUMNS.iter().copied().zip(coupon_row(&coupon)).collect())
}

pub async fn coupon(args: &ClientArgs, command: CouponCommand) -> anyhow::Result<Output> {
    let mut campaign = args.connect()?.campaign().await?;
    Ok(match command {
        CouponCommand::List { member_id, state } => {
            let mut output = Output::rows(COUPON_COLUMNS);
            let mut page_token = String::new();
            loop {
                let page = call!(
                    campaign,
                    list_coupons,
                    campaign_pb::ListCouponsRequest {
                        member_id: member_id.clone(),
                        state: state.map_or(0, Into::into),
                        page_size: 100,
                        page_token,
                    }
                )?;
                page.coupons.iter().for_each(|coupon| output.push(coupon_row(coupon)));
                if page.next_page_token.is_empty() {
                    break output;
                }
                page_token = page.next_page_token;
            }
        }
        CouponCommand::Get { code } => {
            one_coupon(call!(campaign, get_coupon, campaign_pb::GetCouponRequest { code })?.coupon)
        }
        CouponCommand::Issue {
            template_id,
            member_id,
            key,
        } => one_coupon(
            call!(
                campaign,
                issue_coupon,
                campaign_pb::IssueCouponRequest {
                    template_id,
                    member_id,
                    idempotency_key: key,
                }
            )?
            .coupon,
        ),
        CouponCommand::Void { code, reason } => {
            one_coupon(call!(campaign, void_coupon, campaign_pb::VoidCouponRequest { code, reason })?.coupon)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_written_kind_colon_value_with_an_optional_namespace() {
        let phone = parse_identity("phone:13800138000").unwrap();
        assert_eq!(
            (phone.kind(), phone.value.as_str(), phone.namespace.as_str()),
            (identity_pb::IdentityKind::Phone, "13800138000", "")
        );
        let openid = parse_identity("wechat_openid/wx-app:o6_bmj:x").unwrap();
        assert_eq!(
            (openid.kind(), openid.value.as_str(), openid.namespace.as_str()),
            (identity_pb::IdentityKind::WechatOpenid, "o6_bmj:x", "wx-app")
        );
        assert_eq!(identity_text(&openid), "wechat_openid/wx-app:o6_bmj:x");
        assert!(parse_identity("13800138000").unwrap_err().contains("KIND:VALUE"));
        assert!(
            parse_identity("unspecified:1")
                .unwrap_err()
                .contains("unknown identity kind")
        );
    }
}

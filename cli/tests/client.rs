//! The `quanyu` client commands against a running suite, on SQLite and PostgreSQL: the binary as a
//! shell runs it, its stdout read back as JSON.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Output};

use quanyu_proto::campaign::v1 as campaign_pb;
use quanyu_proto::common::v1::Money;
use quanyu_testkit::{Sandbox, keys};
use serde_json::Value;

type Suite = Sandbox;

quanyu_testkit::suite!(
    a_pos_file_is_imported_once_with_each_rejected_row_in_the_error_file,
    a_malformed_pos_file_stops_at_its_first_unreadable_line,
    the_example_files_are_the_same_sales_in_csv_and_json_lines,
    reports_print_the_figures_of_an_imported_file_and_draw_them,
    the_demo_builds_a_group_and_running_it_again_changes_nothing,
    members_points_and_coupons_are_read_and_changed_from_the_shell,
);

/// Runs `quanyu ARGS` against the suite with tenant acme's platform key.
async fn quanyu(suite: &Suite, dir: &Path, args: &[&str]) -> Output {
    let url = |name: &str| format!("http://{}", suite.address(name));
    let mut command = Command::new(env!("CARGO_BIN_EXE_quanyu"));
    command
        .current_dir(dir)
        .args(args)
        .args(["--format", "json"])
        .args([
            "--identity",
            &url("member-identity"),
            "--points",
            &url("loyalty-points"),
        ])
        .args(["--campaign", &url("campaign"), "--analytics", &url("analytics")])
        .env("QUANYU_API_KEY", keys::ACME_PLATFORM)
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("QUANYU_ENDPOINT")
        .env_remove("QUANYU_PROFILE");
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn member_of(suite: &Suite, dir: &Path, phone: &str) -> Value {
    let resolved = quanyu(suite, dir, &["member", "resolve", &format!("phone:{phone}")]).await;
    assert!(resolved.status.success(), "{}", stderr(&resolved));
    json(&resolved)[0].clone()
}

const SALES: &str = "\
store,till,receipt,time,phone,amount,currency,lines,refund_of
sh-01,1,1001,2026-11-20 10:00:00,13700137001,200.00,CNY,A100:shoes:1:200.00,
sh-01,1,1002,2026-11-20 10:05:00,13700137002,80,CNY,,
sh-01,1,1003,2026-11-20 10:10:00,13700137003,twelve,CNY,,
sh-01,2,1004,2026-11-20 10:15:00,,50.00,CNY,,
sh-01,2,1005,2026-11-20 10:20:00,13700137005,30.00,XX,,
sh-01,2,1006,2026-11-21 09:00:00,13700137001,50.00,CNY,,1/1001
";

async fn a_pos_file_is_imported_once_with_each_rejected_row_in_the_error_file(suite: Suite) {
    quanyu_testkit::points::with_program(&suite, 0).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sales.csv"), SALES).unwrap();

    let first = quanyu(&suite, dir.path(), &["pos", "import", "sales.csv"]).await;
    assert!(!first.status.success(), "rejected rows fail the command");
    assert!(
        stderr(&first).contains("2 rows rejected: see sales.csv.errors.csv"),
        "{}",
        stderr(&first)
    );
    let summary = json(&first);
    assert_eq!(
        (&summary["applied"], &summary["already_applied"], &summary["rejected"]),
        (&Value::from(4), &Value::from(0), &Value::from(2)),
        "{summary}"
    );
    let errors = std::fs::read_to_string(dir.path().join("sales.csv.errors.csv")).unwrap();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines[0], "line,column,reason");
    assert!(
        lines[1].starts_with("4,amount,`twelve` is not a decimal amount"),
        "{errors}"
    );
    assert!(lines[2].starts_with("6,currency,"), "{errors}");
    assert_eq!(lines.len(), 3, "{errors}");

    // 200 yuan earned 200 points; the refund of 50 took 50 back.
    let buyer = member_of(&suite, dir.path(), "13700137001").await;
    let member_id = buyer["member_id"].as_str().unwrap();
    let balance = quanyu(&suite, dir.path(), &["points", "balance", member_id]).await;
    assert_eq!(json(&balance)["balance"], 150, "{}", stderr(&balance));

    let again = quanyu(&suite, dir.path(), &["pos", "import", "sales.csv"]).await;
    let summary = json(&again);
    assert_eq!(
        (&summary["applied"], &summary["already_applied"]),
        (&Value::from(0), &Value::from(4)),
        "the same file again changes nothing: {summary}"
    );
    let balance = quanyu(&suite, dir.path(), &["points", "balance", member_id]).await;
    assert_eq!(json(&balance)["balance"], 150);

    let history = quanyu(&suite, dir.path(), &["points", "history", member_id]).await;
    let kinds: Vec<Value> = json(&history)
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["kind"].clone())
        .collect();
    assert_eq!(kinds, ["reverse", "earn"], "newest first");
}

async fn a_malformed_pos_file_stops_at_its_first_unreadable_line(suite: Suite) {
    quanyu_testkit::points::with_program(&suite, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"store":"sh-02","till":"1","receipt":"1","time":"2026-11-20T10:00:00+08:00","phone":"13700137101","amount":10}"#,
        r#"{"store":"sh-02","till":"1","receipt":"2","time":"2026-11-20T10:01:00+08:00","phone":"13700137102","amount":"#,
        r#"{"store":"sh-02","till":"1","receipt":"3","time":"2026-11-20T10:02:00+08:00","phone":"13700137103","amount":10}"#,
    ];
    std::fs::write(dir.path().join("sales.jsonl"), lines.join("\n")).unwrap();
    let import = quanyu(&suite, dir.path(), &["pos", "import", "sales.jsonl"]).await;
    assert!(!import.status.success());
    assert!(
        stderr(&import).contains("sales.jsonl:2: not JSON"),
        "one line names the file and line: {}",
        stderr(&import)
    );
    assert_eq!(json(&import)["applied"], 1, "the row before it was imported");
    assert_eq!(member_of(&suite, dir.path(), "13700137101").await["outcome"], "found");
    assert_eq!(
        member_of(&suite, dir.path(), "13700137103").await["outcome"],
        "not_found",
        "nothing after the unreadable line was applied"
    );
}

/// The README's example files import cleanly, and the JSON Lines file writes the CSV file's sales.
async fn the_example_files_are_the_same_sales_in_csv_and_json_lines(suite: Suite) {
    quanyu_testkit::points::with_program(&suite, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let imported = quanyu(&suite, dir.path(), &["pos", "import", &example("sales.csv")]).await;
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert_eq!(json(&imported)["applied"], 4);
    let again = quanyu(&suite, dir.path(), &["pos", "import", &example("sales.jsonl")]).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        (json(&again)["applied"].clone(), json(&again)["already_applied"].clone()),
        (0.into(), 4.into())
    );
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/pos")
        .join(name)
        .display()
        .to_string()
}

/// The example file's sales (two members, one anonymous buyer, a refund) in every report.
async fn reports_print_the_figures_of_an_imported_file_and_draw_them(suite: Suite) {
    quanyu_testkit::points::with_program(&suite, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let imported = quanyu(&suite, dir.path(), &["pos", "import", &example("sales.csv")]).await;
    assert!(imported.status.success(), "{}", stderr(&imported));

    let window = ["--from", "2026-11-16", "--to", "2026-11-22"];
    let share = ["report", "metrics", "--metric", "member_share_of_sales"];
    let mut figures = Value::Null;
    for _ in 0..100 {
        figures = json(&quanyu(&suite, dir.path(), &[&share[..], &window[..]].concat()).await);
        if figures[0]["denominator"] == 37_690 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Members paid 328.00 + 59.90 - 29.00 refunded; the anonymous buyer 18.00.
    assert_eq!(
        (
            &figures[0]["metric"],
            &figures[0]["numerator"],
            &figures[0]["denominator"]
        ),
        (
            &Value::from("member_share_of_sales"),
            &Value::from(35_890),
            &Value::from(37_690)
        ),
        "{figures}"
    );
    let every = json(&quanyu(&suite, dir.path(), &[&["report", "metrics"][..], &window[..]].concat()).await);
    assert_eq!(every.as_array().unwrap().len(), 15, "every metric by default");

    let overlap = quanyu(
        &suite,
        dir.path(),
        &[&["report", "overlap", "--chart", "overlap.svg"][..], &window[..]].concat(),
    )
    .await;
    assert_eq!(
        json(&overlap),
        serde_json::json!([{"channel": "store", "other_channel": "store", "members": 2}]),
        "{}",
        stderr(&overlap)
    );
    let svg = std::fs::read_to_string(dir.path().join("overlap.svg")).unwrap();
    assert!(
        svg.contains("\nstore\n</text>") && svg.contains("\n2\n</text>"),
        "{svg}"
    );

    let fast = quanyu(
        &suite,
        dir.path(),
        &[&["report", "fast", "--chart", "fast.png"][..], &window[..]].concat(),
    )
    .await;
    let trend = json(&fast);
    assert_eq!(trend.as_array().unwrap().len(), 1, "one weekly point: {trend}");
    assert_eq!(trend[0]["period_end"], "2026-11-22");
    assert_eq!(trend[0]["fertility"], 2, "the two buying members are Purchased");
    assert!(
        std::fs::read(dir.path().join("fast.png"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );

    let flow = quanyu(
        &suite,
        dir.path(),
        &[&["report", "flow", "--chart", "flow.svg"][..], &window[..]].concat(),
    )
    .await;
    let moved: i64 = json(&flow)
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["consumers"].as_i64().unwrap())
        .sum();
    assert_eq!(moved, 2, "{}", stderr(&flow));

    let cohorts = quanyu(&suite, dir.path(), &["report", "cohorts", "--chart", "cohorts.svg"]).await;
    let enrolled: i64 = json(&cohorts)
        .as_array()
        .unwrap()
        .iter()
        .map(|cohort| cohort["members"].as_i64().unwrap())
        .sum();
    assert_eq!(
        enrolled,
        2,
        "the sales enrolled two members this month: {}",
        stderr(&cohorts)
    );

    let bad = quanyu(
        &suite,
        dir.path(),
        &["report", "metrics", "--from", "2026-11-22", "--to", "2026-11-01"],
    )
    .await;
    assert!(
        stderr(&bad).contains("--from 2026-11-22 is after --to 2026-11-01"),
        "{}",
        stderr(&bad)
    );
    let unknown = quanyu(&suite, dir.path(), &["report", "metrics", "--metric", "fertility"]).await;
    assert!(
        stderr(&unknown).contains("unknown metric `fertility`"),
        "{}",
        stderr(&unknown)
    );
}

async fn the_demo_builds_a_group_and_running_it_again_changes_nothing(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let demo = ["demo", "--members", "300", "--days", "90", "--seed", "7"];
    let first = quanyu(&suite, dir.path(), &demo).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let report = json(&first);
    let weeks = report.as_array().unwrap();
    assert!(weeks.len() >= 12, "{report}");
    let last = weeks.last().unwrap();
    let members = last["members"].as_i64().unwrap();
    assert!(
        (250..=300).contains(&members),
        "300 people, a few enrolled twice and merged: {last}"
    );
    assert!(last["fertility"].as_i64().unwrap() > 0, "{last}");

    let from = (chrono::Utc::now() - chrono::Duration::days(100))
        .date_naive()
        .to_string();
    let overlap = json(&quanyu(&suite, dir.path(), &["report", "overlap", "--from", &from]).await);
    let channels: std::collections::BTreeSet<&str> = overlap
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair["channel"].as_str().unwrap())
        .collect();
    assert!(channels.len() >= 4, "members buy on every channel: {overlap}");

    let again = quanyu(&suite, dir.path(), &demo).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(json(&again), report, "the same seed again adds nothing");
}

async fn members_points_and_coupons_are_read_and_changed_from_the_shell(suite: Suite) {
    let dir = tempfile::tempdir().unwrap();
    let mut identity = suite.identity(keys::ACME_PLATFORM).await;
    let first = quanyu_testkit::enrol(&mut identity, "13700137201", Default::default()).await;
    let second = quanyu_testkit::enrol(&mut identity, "13700137202", Default::default()).await;

    let got = quanyu(&suite, dir.path(), &["member", "get", &first]).await;
    let member = json(&got);
    assert_eq!(
        (&member["status"], &member["identities"]),
        (&Value::from("active"), &Value::from("phone:+8613700137201"))
    );

    let merged = quanyu(&suite, dir.path(), &["member", "merge", &first, &second]).await;
    assert_eq!(json(&merged)["survivor"], first.as_str(), "{}", stderr(&merged));
    let resolved = member_of(&suite, dir.path(), "13700137202").await;
    assert_eq!(
        resolved["member_id"],
        first.as_str(),
        "the merged phone reaches the survivor"
    );

    let mut campaign = suite.campaign(keys::ACME_PLATFORM).await;
    campaign
        .create_coupon_template(campaign_pb::CreateCouponTemplateRequest {
            template: Some(campaign_pb::CouponTemplate {
                template_id: "ten-off".into(),
                name: "10 off".into(),
                kind: campaign_pb::CouponKind::AmountOff.into(),
                amount_off: Some(Money {
                    amount_minor: 1_000,
                    currency: "CNY".into(),
                }),
                valid_days: 30,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let issue = ["coupon", "issue", "ten-off", &first, "--key", "welcome-1"];
    let issued = json(&quanyu(&suite, dir.path(), &issue).await);
    assert_eq!(issued["state"], "available");
    let again = json(&quanyu(&suite, dir.path(), &issue).await);
    assert_eq!(again["code"], issued["code"], "the same key answers the same coupon");
    let code = issued["code"].as_str().unwrap();
    let voided = quanyu(
        &suite,
        dir.path(),
        &["coupon", "void", code, "--reason", "issued by mistake"],
    )
    .await;
    assert_eq!(json(&voided)["state"], "void", "{}", stderr(&voided));
    let wallet = json(&quanyu(&suite, dir.path(), &["coupon", "list", &first]).await);
    assert_eq!(wallet.as_array().unwrap().len(), 1);

    let erased = quanyu(
        &suite,
        dir.path(),
        &["member", "erase", &first, "--reason", "pipl request 7"],
    )
    .await;
    assert_eq!(json(&erased)["status"], "erased", "{}", stderr(&erased));

    // A refusal: one line naming the call, the code and why; a non-zero exit.
    let refused = quanyu(&suite, dir.path(), &["member", "get", "nope"]).await;
    assert!(!refused.status.success());
    assert_eq!(
        stderr(&refused).trim(),
        r#"error: get_member: NOT_FOUND: member "nope" not found"#
    );
    let bad = quanyu(&suite, dir.path(), &["member", "merge", &first, &first]).await;
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("merge_members: INVALID_ARGUMENT"),
        "{}",
        stderr(&bad)
    );
    let no_key = Command::new(env!("CARGO_BIN_EXE_quanyu"))
        .args(["member", "get", &first])
        .env_remove("QUANYU_API_KEY")
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert!(stderr(&no_key).contains("no API key"), "{}", stderr(&no_key));
}

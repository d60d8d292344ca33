"""Writes the Grafana dashboards in dashboards/: one per service and a suite overview, each panel a
PromQL query over the metrics the services export. Edit the panels here and run it again:

    python3 deploy/grafana/dashboards.py

CI checks that the JSON files are what this writes (deploy/test_check.py).
"""

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
RATE = "$__rate_interval"


def calls(methods):
    return [
        (f'sum by (code) (rate(grpc_server_handled_total{{method=~"{methods}"}}[{RATE}]))', "{{code}}"),
    ]


def latency(methods):
    return [
        (
            f"histogram_quantile({quantile}, sum by (le, method) "
            f'(rate(grpc_server_handling_seconds_bucket{{method=~"{methods}"}}[{RATE}])))',
            f"p{round(quantile * 100)} {{{{method}}}}",
        )
        for quantile in (0.5, 0.99)
    ]


def pool(service):
    return [
        (f'sum by (instance, state) (db_pool_connections{{service="{service}"}})', "{{instance}} {{state}}"),
        (f'sum by (instance) (db_pool_max_connections{{service="{service}"}})', "{{instance}} max"),
    ]


def lag(consumers):
    return [(f'max by (consumer) (outbox_consumer_lag_seconds{{consumer=~"{consumers}"}})', "{{consumer}}")]


def service_panels(package, service, consumers):
    methods = f"/{package}/.*"
    panels = [
        ("Calls by code", calls(methods), "reqps"),
        ("Latency", latency(methods), "s"),
        ("Database pool", pool(service), "short"),
        ("Events appended", [(f"sum(rate(outbox_events_appended_total[{RATE}]))", "events/s")], "short"),
    ]
    if consumers:
        panels.append(("Event streams read: lag", lag(consumers), "s"))
    return panels


DASHBOARDS = {
    "overview": (
        "Quanyu: overview",
        [
            (
                "Calls by service",
                [
                    (
                        'sum by (service) (label_replace(rate(grpc_server_handled_total[$__rate_interval]), '
                        '"service", "$1", "method", "/quanyu\\\\.([a-z]+)\\\\.v1\\\\..*"))',
                        "{{service}}",
                    )
                ],
                "reqps",
            ),
            (
                "Server-side failures",
                [
                    (
                        'sum by (code) (rate(grpc_server_handled_total{code=~"INTERNAL|UNKNOWN|DATA_LOSS|UNAVAILABLE|'
                        f'DEADLINE_EXCEEDED"}}[{RATE}]))',
                        "{{code}}",
                    )
                ],
                "reqps",
            ),
            ("Latency", latency("/quanyu.*"), "s"),
            ("Event streams read: lag", lag(".*"), "s"),
            ("Calls waiting for a connection", [("sum by (instance) (db_pool_waiting)", "{{instance}}")], "short"),
            ("Resident memory", [("process_resident_memory_bytes", "{{instance}}")], "bytes"),
            ("CPU", [(f"rate(process_cpu_seconds_total[{RATE}])", "{{instance}}")], "percentunit"),
        ],
    ),
    "member-identity": (
        "Quanyu: member-identity",
        service_panels("quanyu.identity.v1.MemberIdentityService", "member-identity", ""),
    ),
    "loyalty-points": (
        "Quanyu: loyalty-points",
        service_panels("quanyu.points.v1.PointsService", "loyalty-points", "loyalty-points.*")
        + [
            ("Sales by outcome", [(f"sum by (outcome) (rate(points_sales_total[{RATE}]))", "{{outcome}}")], "short"),
            (
                "Points moved, by kind",
                [(f"sum by (kind) (rate(points_ledger_points_total[{RATE}]))", "{{kind}}")],
                "short",
            ),
            (
                "Rejected sales by field",
                [(f"sum by (field) (rate(points_sales_rejected_total[{RATE}]))", "{{field}}")],
                "short",
            ),
        ],
    ),
    "campaign": (
        "Quanyu: campaign",
        service_panels("quanyu.campaign.v1.CampaignService", "campaign", "campaign.*")
        + [("Coupons", [(f"sum by (event) (rate(campaign_coupons_total[{RATE}]))", "{{event}}")], "short")],
    ),
    "analytics": (
        "Quanyu: analytics",
        # Freshness: how long after an event analytics counts it.
        service_panels("quanyu.analytics.v1.AnalyticsService", "analytics", "analytics.*"),
    ),
}


def panel(number, title, queries, unit):
    return {
        "id": number,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (number % 2), "y": 8 * (number // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + index), "expr": expr, "legendFormat": legend}
            for index, (expr, legend) in enumerate(queries)
        ],
    }


def dashboard(uid, title, panels):
    return {
        "uid": f"quanyu-{uid}",
        "title": title,
        "tags": ["quanyu"],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": [panel(number, *spec) for number, spec in enumerate(panels)],
    }


def rendered():
    """Each dashboard's file name and JSON text."""
    return {
        f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2, ensure_ascii=False) + "\n"
        for uid, (title, panels) in DASHBOARDS.items()
    }


def expressions():
    return [target["expr"] for text in rendered().values() for item in json.loads(text)["panels"] for target in item["targets"]]


if __name__ == "__main__":
    (HERE / "dashboards").mkdir(exist_ok=True)
    for name, text in rendered().items():
        (HERE / "dashboards" / name).write_text(text)

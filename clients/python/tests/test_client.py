"""Against a `quanyu serve` started here on free ports (SQLite, the development configuration):
enrol, record a sale, read the balance, read a FAST figure. QUANYU_BIN names the binary."""

import datetime as dt
import os
import socket
import subprocess
import tempfile
import time
import unittest

from quanyu.identity.v1 import identity_pb2
from quanyu.points.v1 import points_pb2
from quanyu_client import Quanyu, QuanyuError


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class AgainstServe(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.ports = {name: free_port() for name in ("identity", "points", "campaign", "analytics")}
        listen = {
            "MEMBER_IDENTITY": "identity",
            "LOYALTY_POINTS": "points",
            "CAMPAIGN": "campaign",
            "ANALYTICS": "analytics",
        }
        environment = {key: value for key, value in os.environ.items() if not key.startswith("QUANYU_")}
        for section, name in listen.items():
            environment[f"QUANYU_{section}__LISTEN"] = f"127.0.0.1:{cls.ports[name]}"
        for section in ("LOYALTY_POINTS", "CAMPAIGN", "ANALYTICS"):
            environment[f"QUANYU_{section}__IDENTITY_ENDPOINT"] = f"http://127.0.0.1:{cls.ports['identity']}"
        for section in ("CAMPAIGN", "ANALYTICS"):
            environment[f"QUANYU_{section}__POINTS_ENDPOINT"] = f"http://127.0.0.1:{cls.ports['points']}"
        environment["QUANYU_ANALYTICS__CAMPAIGN_ENDPOINT"] = f"http://127.0.0.1:{cls.ports['campaign']}"
        environment["QUANYU_CAMPAIGN__ANALYTICS_ENDPOINT"] = f"http://127.0.0.1:{cls.ports['analytics']}"
        environment["QUANYU_TELEMETRY__METRICS_LISTEN"] = f"127.0.0.1:{free_port()}"
        cls.directory = tempfile.TemporaryDirectory()
        cls.log = open(os.path.join(cls.directory.name, "serve.log"), "w")
        cls.server = subprocess.Popen([os.environ.get("QUANYU_BIN", "quanyu"), "serve"], cwd=cls.directory.name,
                                      env=environment, stdout=cls.log, stderr=subprocess.STDOUT)
        cls.client = Quanyu("dev-demo-platform", ports=cls.ports)
        deadline = time.monotonic() + 60
        while True:
            try:
                cls.client.call(cls.client.identity.ListBrands, identity_pb2.ListBrandsRequest())
                break
            except QuanyuError:
                if time.monotonic() > deadline or cls.server.poll() is not None:
                    raise
                time.sleep(0.2)

        program = points_pb2.Program(
            program_id="club",
            points_name="points",
            earning=points_pb2.EarningRules(points_per_unit=1, unit_minor=100, utc_offset_minutes=480),
            expiry=points_pb2.ExpiryPolicy(rolling_months=12),
            tiers=[points_pb2.Tier(code="member", growth_threshold=0, multiplier_bp=10000)],
            auto_enroll=True,
        )
        cls.client.call(cls.client.points.UpsertProgram, points_pb2.UpsertProgramRequest(program=program))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()
        cls.server.terminate()
        cls.server.wait(timeout=30)
        cls.log.close()
        cls.directory.cleanup()

    def test_enrol_sell_read_the_balance_and_a_fast_figure(self) -> None:
        member_id = self.client.enroll("13800138000", channel="store", store_id="sh-01")
        at = dt.datetime.now(dt.timezone.utc)
        sold = self.client.record_sale("pos-1", "t-1", 12800, phone="+86 138 0013 8000", store_id="sh-01",
                                       occurred_at=at)
        self.assertEqual((sold.outcome, sold.member_id, sold.points_earned), ("applied", member_id, 128))
        again = self.client.record_sale("pos-1", "t-1", 12800, phone="+86 138 0013 8000", store_id="sh-01",
                                        occurred_at=at)
        self.assertEqual(again.outcome, "duplicate")
        self.assertEqual(self.client.balance(member_id).balance, 128)

        today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
        deadline = time.monotonic() + 30
        fertility = self.client.metric("fast_fertility", today, today)
        while fertility.numerator < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            fertility = self.client.metric("fast_fertility", today, today)
        self.assertEqual(fertility.numerator, 1, "the buying member is a consumer in the Purchased stage")

    def test_a_refusal_names_its_code_and_field(self) -> None:
        with self.assertRaises(QuanyuError) as refused:
            self.client.metric("fast_fertility", dt.date(2026, 12, 2), dt.date(2026, 12, 1))
        self.assertEqual(refused.exception.code, "INVALID_ARGUMENT")
        self.assertIn("end_date", refused.exception.message)

    def test_a_member_points_never_saw_reads_as_an_empty_account(self) -> None:
        # loyalty-points does not ask member-identity whether an id exists (README: "Calling it").
        balance = self.client.balance("01890000-0000-7000-8000-000000000000")
        self.assertEqual((balance.balance, balance.available, balance.tier), (0, 0, "member"))


if __name__ == "__main__":
    unittest.main()

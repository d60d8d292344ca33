"""A small typed wrapper over Quanyu's generated gRPC stubs for the calls most teams make first:
enrol a member, record a till's sale, read a balance, read a metric. Every other call is on the
stubs themselves (``client.identity``, ``client.points``, ``client.campaign``,
``client.analytics``), with the messages under ``quanyu.<service>.v1``."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Optional

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from quanyu.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from quanyu.campaign.v1 import campaign_pb2_grpc
from quanyu.common.v1 import common_pb2
from quanyu.identity.v1 import identity_pb2, identity_pb2_grpc
from quanyu.points.v1 import points_pb2, points_pb2_grpc

__all__ = ["Quanyu", "SaleResult", "Balance", "MetricValue", "QuanyuError"]

STANDARD_PORTS = {"identity": 50051, "points": 50052, "campaign": 50053, "analytics": 50054}


class QuanyuError(Exception):
    """A refused call: its gRPC code name (``INVALID_ARGUMENT``) and the service's message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SaleResult:
    outcome: str  # "applied", "duplicate" or "rejected"
    member_id: str
    points_earned: int
    balance_after: int
    violations: list[str]


@dataclass(frozen=True)
class Balance:
    member_id: str
    balance: int
    available: int
    tier: str


@dataclass(frozen=True)
class MetricValue:
    metric: str
    numerator: int
    denominator: int
    value: float


def _timestamp(at: _dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at.astimezone(_dt.timezone.utc))
    return stamp


def _enum_name(enum, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()


class Quanyu:
    """Clients of the four services, each call carrying the API key.

    ``host`` is where the suite runs with its standard ports; ``ports`` moves any of them
    (``{"points": 6052}``).
    """

    def __init__(self, api_key: str, host: str = "127.0.0.1", ports: Optional[dict[str, int]] = None,
                 timeout: float = 10.0) -> None:
        where = {**STANDARD_PORTS, **(ports or {})}
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._timeout = timeout
        self._channels = {name: grpc.insecure_channel(f"{host}:{port}") for name, port in where.items()}
        self.identity = identity_pb2_grpc.MemberIdentityServiceStub(self._channels["identity"])
        self.points = points_pb2_grpc.PointsServiceStub(self._channels["points"])
        self.campaign = campaign_pb2_grpc.CampaignServiceStub(self._channels["campaign"])
        self.analytics = analytics_pb2_grpc.AnalyticsServiceStub(self._channels["analytics"])

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def __enter__(self) -> "Quanyu":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def call(self, method, request):
        """Calls a stub's method with the key and the timeout; a refusal raises QuanyuError."""
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as error:
            raise QuanyuError(error.code().name, error.details() or "") from None

    def enroll(self, phone: str, channel: str = "store", store_id: str = "", brand_id: str = "") -> str:
        """Enrols (or finds) the member with this phone; their member id."""
        request = identity_pb2.EnrollMemberRequest(
            identities=[identity_pb2.Identity(kind=identity_pb2.IDENTITY_KIND_PHONE, value=phone)],
            enrollment=identity_pb2.Enrollment(
                channel=common_pb2.Channel.Value(f"CHANNEL_{channel.upper()}"),
                store_id=store_id,
                brand_id=brand_id,
            ),
        )
        return self.call(self.identity.EnrollMember, request).member.member_id

    def record_sale(self, source: str, transaction_id: str, amount_minor: int, *, phone: str = "",
                    member_id: str = "", currency: str = "CNY", store_id: str = "",
                    channel: str = "store", occurred_at: Optional[_dt.datetime] = None) -> SaleResult:
        """Records one sale, keyed by (source, transaction_id): sending it again is a duplicate."""
        if phone:
            buyer = points_pb2.Buyer(identity=identity_pb2.Identity(kind=identity_pb2.IDENTITY_KIND_PHONE,
                                                                     value=phone))
        elif member_id:
            buyer = points_pb2.Buyer(member_id=member_id)
        else:
            buyer = None
        sale = points_pb2.Sale(
            source=source,
            transaction_id=transaction_id,
            kind=points_pb2.SALE_KIND_SALE,
            channel=common_pb2.Channel.Value(f"CHANNEL_{channel.upper()}"),
            store_id=store_id,
            occurred_at=_timestamp(occurred_at or _dt.datetime.now(_dt.timezone.utc)),
            buyer=buyer,
            amount=common_pb2.Money(amount_minor=amount_minor, currency=currency),
        )
        result = self.call(self.points.RecordSales, points_pb2.RecordSalesRequest(sales=[sale])).results[0]
        return SaleResult(
            outcome=_enum_name(points_pb2.SaleOutcome, result.outcome, "SALE_OUTCOME_"),
            member_id=result.member_id,
            points_earned=result.points_earned,
            balance_after=result.balance_after,
            violations=[f"{violation.field}: {violation.description}" for violation in result.violations],
        )

    def balance(self, member_id: str, program_id: str = "") -> Balance:
        account = points_pb2.AccountRef(member_id=member_id, program_id=program_id)
        found = self.call(self.points.GetBalance, points_pb2.GetBalanceRequest(account=account)).balance
        return Balance(member_id=found.member_id, balance=found.balance, available=found.available,
                       tier=found.tier)

    def metric(self, name: str, start: _dt.date, end: _dt.date) -> MetricValue:
        """One metric by its name without prefix ("fast_fertility") over the days start..end."""
        request = analytics_pb2.GetMetricsRequest(
            metrics=[analytics_pb2.Metric.Value(f"METRIC_{name.upper()}")],
            start_date=start.isoformat(),
            end_date=end.isoformat(),
        )
        value = self.call(self.analytics.GetMetrics, request).values[0]
        return MetricValue(metric=name, numerator=value.numerator, denominator=value.denominator,
                           value=value.value)

"""Feature requests through the SDK and the CLI (no server): the state machine, its refusals, and
delivery by the first run after the link (:mod:`featurestore.feature_requests`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from featurestore.alert_channels import AlertDeliveryError, AlertMessage
from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.feature_requests import (
    DuplicateSupportError,
    FeatureRequests,
    RequestStateError,
    RequestStatus,
    sort_requests,
)
from featurestore.store import FeatureStore
from tests.unit.test_cli import applied_and_run, featurestore


class Channel:
    """An alert channel keeping what it was sent; fails when ``fail`` is set."""

    def __init__(self, name: str, *, fail: bool = False) -> None:
        self.name, self.where, self.fail = name, f"test channel {name}", fail
        self.sent: list[AlertMessage] = []

    def send(self, message: AlertMessage) -> None:
        if self.fail:
            raise AlertDeliveryError(f"{self.where}: refused")
        self.sent.append(message)


@dataclass(frozen=True)
class Published:
    """A run's outcome as delivery reads it (``etl.runs.RunResult`` in the pipeline)."""

    run_id: str
    view: str = "customer_stats"
    status: str = "succeeded"
    rows_offline: int = 3


def add_view(shop: Path, name: str) -> None:
    """Add a second view of the shop's transactions, ``name``, and apply it."""
    features = shop / "features.py"
    features.write_text(
        features.read_text()
        + f"""
{name} = FeatureView(
    name="{name}",
    entities=(customer,),
    source=transactions,
    timestamp_field="as_of",
    ttl=timedelta(days=3650),
    transformation=\"\"\"
        SELECT customer_id, date_trunc('day', ts) + INTERVAL 1 DAY AS as_of, count(*) AS n_1d
        FROM transactions GROUP BY ALL
    \"\"\",
    features=(Feature("n_1d", Int64, description="Transactions of the previous day"),),
)
"""
    )
    applied = featurestore("-C", shop, "apply")
    assert applied.code == 0 and f"created  feature view {name}" in applied.out, applied.err + applied.out


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return applied_and_run(tmp_path_factory.mktemp("requests") / "shop")


@pytest.fixture
def shop(applied: Path, tmp_path: Path) -> Path:
    """A copy of the shop project, applied and run once (paths in it are relative to its folder)."""
    return Path(shutil.copytree(applied, tmp_path / "shop"))


@pytest.fixture
def store(shop: Path) -> Iterator[FeatureStore]:
    with FeatureStore(shop) as store:
        yield store


def file(requests: FeatureRequests, title: str = "chargeback ratio", **extra: object) -> int:
    args: dict[str, object] = {
        "title": title,
        "entity": "customer",
        "description": "chargebacks / payments over 90 days",
        "reason": "the fraud model",
        "actor": "sam",
        **extra,
    }
    return requests.file(**args).id  # type: ignore[arg-type]


def test_a_request_is_filed_supported_accepted_linked_and_delivered_by_the_next_run(
    store: FeatureStore, shop: Path
) -> None:
    ok, down = Channel("ops"), Channel("down", fail=True)
    requests = FeatureRequests(store, channels=[ok, down])
    rid = file(requests, due=date(2026, 12, 31), model="fraud_gbm")
    assert requests.get(rid).status is RequestStatus.OPEN
    requests.support(rid, comment="churn needs it too", actor="ana")
    requests.accept(rid, actor="eve")
    linked = requests.link(rid, view="customer_stats", features=["spend_1d"], actor="eve")
    assert (linked.status, linked.view, linked.features, linked.decided_by) == (
        RequestStatus.IN_PROGRESS,
        "customer_stats",
        ("spend_1d",),
        "eve",
    )
    # A run of another view, or a run of the view over a window without data: still in progress.
    add_view(shop, "customer_counts")
    other = featurestore("-C", shop, "run", "customer_counts", "--no-progress")
    assert other.code == 0 and "customer_counts: 3 rows offline" in other.out, other.err
    empty = featurestore(
        "-C", shop, "run", "customer_stats", "--start", "2030-01-01", "--end", "2030-01-02", "--no-progress"
    )
    assert empty.code == 0 and "customer_stats: 0 rows offline" in empty.out, empty.err
    assert requests.get(rid).status is RequestStatus.IN_PROGRESS
    assert requests.notifications("sam") == [] and ok.sent == []

    view = store.get_feature_view("customer_stats")
    assert requests.deliver_published(view, Published("run-0", rows_offline=0)) == []
    delivered = requests.deliver_published(view, Published("run-1"))
    assert [r.id for r in delivered] == [rid]
    record = requests.get(rid)
    assert (record.status, record.delivered_run) == (RequestStatus.DELIVERED, "run-1")
    assert [e.event for e in record.history] == ["filed", "supported", "accepted", "linked", "delivered"]
    assert [e.actor for e in record.history] == ["sam", "ana", "eve", "eve", "run:run-1"]
    # Notified: the requester and the supporter in the UI, the working channel once; the failing
    # channel did not stop the delivery and its error is in the audit log.
    assert [n.request_id for n in requests.notifications("sam")] == [rid]
    assert [n.request_id for n in requests.notifications("ana")] == [rid]
    assert requests.notifications("eve") == []
    assert len(ok.sent) == 1 and ok.sent[0].payload["event"] == "request.delivered"
    assert ok.sent[0].payload["notify"] == ["sam", "ana"]
    assert ok.sent[0].payload["features"] == ["spend_1d"]
    notify = store.registry.audit_log(store.project, action="request.notify")
    assert notify[0].detail["channels"] == {"ops": "sent", "down": "AlertDeliveryError: test channel down: refused"}
    # Delivered once: another run delivers nothing again.
    assert requests.deliver_published(view, Published("run-2")) == []
    actions = [a.action for a in store.registry.audit_log(store.project, limit=20)]
    for action in ("request.file", "request.support", "request.accept", "request.link", "request.deliver"):
        assert action in actions


def test_a_failure_writing_the_notifications_leaves_the_request_in_progress(store: FeatureStore) -> None:
    """The state change and the UI notifications are one transaction: neither is kept alone,
    and the next run delivers."""
    ok = Channel("ops")
    requests = FeatureRequests(store, channels=[ok])
    rid = file(requests)
    requests.support(rid, actor="ana")
    requests.link(rid, view="customer_stats", features=["spend_1d"], actor="eve")
    engine = store.registry._engine

    def refuse(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO FEATURE_REQUEST_NOTIFICATIONS"):
            raise RuntimeError("disk full")

    sa.event.listen(engine, "before_cursor_execute", refuse)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            requests.deliver_published(store.get_feature_view("customer_stats"), Published("run-1"))
    finally:
        sa.event.remove(engine, "before_cursor_execute", refuse)
    record = requests.get(rid)
    assert (record.status, record.delivered_run) == (RequestStatus.IN_PROGRESS, None)
    assert requests.notifications("sam") == [] and ok.sent == []
    assert [r.id for r in requests.deliver_published(store.get_feature_view("customer_stats"), Published("run-2"))] == [
        rid
    ]
    assert requests.get(rid).delivered_run == "run-2"
    assert [n.request_id for n in requests.notifications("sam")] == [rid]
    assert [n.request_id for n in requests.notifications("ana")] == [rid]
    assert len(ok.sent) == 1


def test_a_request_re_linked_while_the_run_publishes_is_not_delivered(
    store: FeatureStore, shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delivering transaction checks the link, not only the status: a request the run
    listed as linked to its view, re-linked to another view before it delivers, stays."""
    add_view(shop, "customer_counts")
    store.refresh()
    requests = FeatureRequests(store, channels=[])
    rid = file(requests)
    requests.link(rid, view="customer_stats", features=["spend_1d"], actor="eve")
    listed = store.registry.list_requests(store.project, statuses=[RequestStatus.IN_PROGRESS], view="customer_stats")
    requests.link(rid, view="customer_counts", features=["n_1d"], actor="eve")  # while the run publishes
    monkeypatch.setattr(store.registry, "list_requests", lambda *a, **k: listed)
    assert requests.deliver_published(store.get_feature_view("customer_stats"), Published("run-1")) == []
    record = requests.get(rid)
    assert (record.status, record.view, record.features) == (RequestStatus.IN_PROGRESS, "customer_counts", ("n_1d",))
    with pytest.raises(RequestStateError, match="linked to customer_counts: n_1d now"):
        store.registry.deliver_request(
            store.project, rid, view="customer_stats", published=["spend_1d", "txn_count_1d"], run_id="run-1"
        )
    with pytest.raises(RequestStateError, match="linked to customer_counts: n_1d now"):
        store.registry.deliver_request(store.project, rid, view="customer_counts", published=["other"], run_id="run-1")
    assert requests.notifications("sam") == []


def test_illegal_steps_are_refused_with_what_to_do(store: FeatureStore) -> None:
    requests = FeatureRequests(store, channels=[])
    rid = file(requests)
    with pytest.raises(DuplicateSupportError, match="filed feature request"):
        requests.support(rid, actor="sam")  # one's own
    requests.support(rid, comment="me too", actor="ana")
    with pytest.raises(DuplicateSupportError, match="already supports"):
        requests.support(rid, comment="again", actor="ana")
    requests.accept(rid, actor="eve")
    with pytest.raises(RequestStateError, match="accepted already"):
        requests.accept(rid, actor="eve")
    with pytest.raises(RequestStateError, match="not linked"):
        store.registry.decide_request(store.project, rid, "delivered", actor="x", values={}, detail={})
    requests.decline(rid, reason="the chargeback feed is not available to us", actor="eve")
    steps: list[Callable[[], object]] = [
        lambda: requests.accept(rid, actor="eve"),
        lambda: requests.support(rid, actor="bob"),
        lambda: requests.link(rid, view="customer_stats", features=["spend_1d"], actor="eve"),
        lambda: requests.decline(rid, reason="again", actor="eve"),
    ]
    for step in steps:
        with pytest.raises(RequestStateError, match="declined by eve: the chargeback feed"):
            step()
    assert len(requests.get(rid).supporters) == 1
    with pytest.raises(NotFoundError, match="Feature request '#999' not found"):
        requests.accept(999, actor="eve")
    with pytest.raises(NotFoundError, match=r"Entity 'custmer' not found.*customer"):
        file(requests, entity="custmer")
    with pytest.raises(InvalidRequestError, match="needs a reason"):
        file(requests, reason="  ")
    with pytest.raises(InvalidRequestError, match="needs a reason"):
        requests.decline(file(requests), reason="", actor="eve")
    other = file(requests, title="velocity")
    with pytest.raises(NotFoundError, match=r"spend_7d.*spend_1d"):
        requests.link(other, view="customer_stats", features=["spend_7d"], actor="eve")
    with pytest.raises(NotFoundError, match="Feature view 'customer_stat' not found"):
        requests.link(other, view="customer_stat", features=["spend_1d"], actor="eve")
    with pytest.raises(InvalidRequestError, match="unknown request state"):
        requests.list(tab="closed")


def test_requests_sort_by_support_and_due(store: FeatureStore) -> None:
    requests = FeatureRequests(store, channels=[])
    late = file(requests, title="late", due=date(2027, 6, 1))
    soon = file(requests, title="soon", due=date(2026, 12, 1))
    undated = file(requests, title="undated")
    for voter in ("a", "b"):
        requests.support(undated, actor=voter)
    requests.support(late, actor="a")
    found = requests.list(tab="open")
    assert [r.id for r in sort_requests(found, "support")] == [undated, late, soon]
    assert [r.id for r in sort_requests(found, "due")] == [soon, late, undated]
    assert [r.id for r in requests.list(tab="open", sort="newest")] == [undated, soon, late]
    assert store.registry.request_counts(store.project) == {
        "open": 3,
        "accepted": 0,
        "in_progress": 0,
        "delivered": 0,
        "declined": 0,
        "votes": 3,
    }


def test_the_cli_files_links_and_a_cli_run_delivers(shop: Path) -> None:
    filed = featurestore(
        "-C", shop, "request", "file", "--title", "chargeback ratio", "--entity", "customer",
        "--description", "chargebacks / payments, 90 days", "--why", "fraud model", "--due", "2026-12-31",
    )  # fmt: skip
    assert filed.code == 0, filed.err
    assert "filed feature request #1: chargeback ratio" in filed.out
    bad_due = featurestore("-C", shop, "request", "file", "--title", "x", "--entity", "customer",
                           "--description", "x", "--why", "x", "--due", "31/12")  # fmt: skip
    assert bad_due.code != 0 and "YYYY-MM-DD" in bad_due.err
    own = featurestore("-C", shop, "request", "support", "1")
    assert own.code == 1 and "the requester's need counts already" in own.err
    linked = featurestore("-C", shop, "request", "link", "1", "--view", "customer_stats", "--feature", "spend_1d")
    assert linked.code == 0, linked.err
    assert "the next successful run of 'customer_stats' delivers it" in linked.out
    accept = featurestore("-C", shop, "request", "accept", "1")
    assert accept.code == 1 and "Cannot accept feature request #1: it is in progress already" in accept.err
    listed = featurestore("-C", shop, "request", "list", "--state", "in_progress")
    assert "#1" in listed.out and "customer_stats: spend_1d" in listed.out
    ran = featurestore("-C", shop, "run", "customer_stats", "--no-progress")
    assert ran.code == 0, ran.err
    shown = json.loads(featurestore("-C", shop, "request", "show", "1", "--json").out)
    assert shown["status"] == "delivered"
    assert [e["event"] for e in shown["history"]] == ["filed", "linked", "delivered"]
    text = featurestore("-C", shop, "request", "show", "1").out
    assert "[delivered]" in text and "linked to: customer_stats: spend_1d" in text
    assert featurestore("-C", shop, "request", "list", "--state", "open").out.startswith("no feature requests open")
    missing = featurestore("-C", shop, "request", "show", "7")
    assert missing.code == 1 and "Feature request '#7' not found" in missing.err

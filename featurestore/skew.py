"""Training/serving skew measured on real traffic: served vectors against the offline values.

The served-vector log (:mod:`featurestore.serving_log`) keeps what each sampled online lookup
and prediction returned. :func:`skew_report` reads a feature service's logged vectors over a
window of request times and, for each logged (entity, request time), reads the offline value as
of that time with the project's point-in-time join (:func:`featurestore.retrieval.training_set`,
the join training sets use), then classifies every served value:

``match``
    the value a training set would read for that entity at that instant (both absent counts too:
    served ``missing`` and no live offline row).
``late``
    offline's row as of the request time is live (within the view's TTL), newer than what was
    served and was written after the request: data that arrived after serving. When a row was written is when the run (or push)
    that published its file finished, from the registry's runs (a pushed row: its push time; a
    file no run names: the file's modification time). A run that rewrites a date's partition
    republishes that date's older rows too, so a row is called late only when offline's event
    time differs from the served one, never for the same row served.
``differs``
    the values differ although online served a row (``present``, ``null`` or ``invalid``):
    an online value changed outside the runs, a failed derivation, a value offline lacks.
``missing_online``
    served ``missing`` while offline's row as of the request was live and written before it.
``expired``
    online and offline judged the TTL differently: online withheld a value as ``expired`` while
    offline's row as of the request was live (within the TTL) and written before the request, or
    online served a value (``present`` or ``invalid``) while offline's row as of the request was
    already past the TTL (a training set reads null there).

Offline's freshness is tested first: where offline's row as of the request is absent or past the
TTL, a training set reads null, so a value online served as ``missing``, ``expired`` or ``null``
is a ``match`` there (and a value online served for an entity offline has no row of, as of the
request, ``differs``).

The report gives per feature the values served, the match rate, the count of each class and a
few examples (entity, request time, served and offline values, statuses and times). Each report
is recorded in the registry (:mod:`featurestore.registry.skew_reports`), shown by the registry
UI on the view and model pages, served by ``GET /v1/skew-reports`` and exported on
``/v1/metrics`` (:class:`SkewCollector`).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore.definitions import Feature, FeatureView
from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.offline.parquet import PUSHED_AT
from featurestore.registry.skew_reports import latest_skew_reports, list_skew_reports, record_skew_report
from featurestore.retrieval import ViewRequest, normalize_spine, output_names, training_set
from featurestore.schema import to_utc_timestamp
from featurestore.serving_log import read_served_with_outputs, served_root
from featurestore.times import aware_time
from featurestore.types import ValueType

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from featurestore.registry import Registry
    from featurestore.store import FeatureStore

CLASSES = ("match", "late", "differs", "missing_online", "expired")
"""Every class a served value falls in (see the module's text); all but ``match`` are mismatches."""
EXAMPLES = 3
"""Examples kept per feature and mismatch class."""
_EVENT = "skew_offline_event_time"
_WRITTEN = "skew_offline_written_at"
_FOREVER = timedelta(days=365 * 1000)
"""The probe view's TTL: the join keeps expired rows, so that expiry is classified here."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SENSITIVE_TAG = "sensitive"
"""A feature tagged so has its served and offline values hidden in examples (as previews hide them)."""
HIDDEN = "hidden (sensitive)"
"""What an example shows instead of a sensitive feature's values."""


@dataclass(frozen=True)
class FeatureSkew:
    """One feature's comparison: values ``served``, their ``counts`` per class, ``examples`` per
    mismatch class (entity, request time, served and offline values and times)."""

    view: str
    feature: str
    served: int
    counts: dict[str, int]
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def matched(self) -> int:
        return self.counts.get("match", 0)

    @property
    def mismatches(self) -> int:
        return self.served - self.matched

    @property
    def match_rate(self) -> float | None:
        """Share of served values that matched (None when none was served)."""
        return self.matched / self.served if self.served else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "feature": self.feature,
            "served": self.served,
            "match_rate": self.match_rate,
            "counts": dict(self.counts),
            "examples": {k: list(v) for k, v in self.examples.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSkew:
        return cls(data["view"], data["feature"], data["served"], dict(data["counts"]), dict(data["examples"]))


@dataclass(frozen=True)
class SkewReport:
    """A feature service's served values over ``[since, until)`` compared with offline, per feature."""

    project: str
    service: str
    since: datetime
    until: datetime | None
    computed_at: datetime
    computed_by: str
    requests: int
    """Distinct request ids logged in the window."""
    rows: int
    """Entity rows logged (one per entity of each lookup)."""
    features: tuple[FeatureSkew, ...]
    id: int | None = None
    """The report's id in the registry, once recorded."""

    @property
    def values_compared(self) -> int:
        return sum(f.served for f in self.features)

    @property
    def matched(self) -> int:
        return sum(f.matched for f in self.features)

    @property
    def mismatches(self) -> int:
        return self.values_compared - self.matched

    @property
    def match_rate(self) -> float | None:
        return self.matched / self.values_compared if self.values_compared else None

    def counts(self) -> dict[str, int]:
        """Values per class, over every feature."""
        return {c: sum(f.counts.get(c, 0) for f in self.features) for c in CLASSES}

    def feature(self, name: str) -> FeatureSkew:
        """The comparison of feature ``name`` (or ``view:feature``)."""
        for f in self.features:
            if name in (f.feature, f"{f.view}:{f.feature}"):
                return f
        raise NotFoundError("feature", name, candidates=[f"{f.view}:{f.feature}" for f in self.features])

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "service": self.service,
            "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "computed_at": self.computed_at.isoformat(),
            "computed_by": self.computed_by,
            "requests": self.requests,
            "rows": self.rows,
            "values_compared": self.values_compared,
            "matched": self.matched,
            "match_rate": self.match_rate,
            "counts": self.counts(),
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SkewReport:
        return cls(
            project=data["project"],
            service=data["service"],
            since=datetime.fromisoformat(data["since"]),
            until=datetime.fromisoformat(data["until"]) if data.get("until") else None,
            computed_at=datetime.fromisoformat(data["computed_at"]),
            computed_by=data["computed_by"],
            requests=data["requests"],
            rows=data["rows"],
            features=tuple(FeatureSkew.from_dict(f) for f in data["features"]),
            id=data.get("id"),
        )

    def render(self) -> str:
        """The report as text, for the CLI."""
        until = self.until.isoformat() if self.until else "now"
        rate = "n/a" if self.match_rate is None else f"{self.match_rate:.2%}"
        lines = [
            f"Skew of feature service '{self.service}' (project '{self.project}'), requests {self.since.isoformat()} "
            f"to {until}: {self.requests} requests, {self.rows} entity rows, {self.values_compared} values, "
            f"match rate {rate}" + (f" (report {self.id})" if self.id is not None else ""),
        ]
        if not self.rows:
            lines.append(
                f"No served vectors logged for {self.service} between {self.since.isoformat()} and {until}; is "
                "serving_log.sample_rate > 0 in featurestore.yaml for the servers that served it, and were they "
                "asked for this feature service by name? The report was not recorded."
            )
            return "\n".join(lines)
        head = f"{'feature':<40} {'served':>8} {'match rate':>10} " + " ".join(f"{c:>14}" for c in CLASSES)
        lines += ["", head]
        for f in self.features:
            rate_f = "n/a" if f.match_rate is None else f"{f.match_rate:.2%}"
            counts = " ".join(f"{f.counts.get(c, 0):>14}" for c in CLASSES)
            lines.append(f"{f.view + ':' + f.feature:<40} {f.served:>8} {rate_f:>10} {counts}")
        for f in self.features:
            for cls, examples in f.examples.items():
                for e in examples:
                    lines.append(
                        f"  {cls} {f.view}:{f.feature} entity {e['entity']} at {e['request_time']}: served "
                        f"{e['served_value']!r} ({e['served_status']}, event time {e['served_event_time']}), offline "
                        f"{e['offline_value']!r} (event time {e['offline_event_time']}, written {e['offline_written_at']})"
                    )
        return "\n".join(lines)


# ---------------------------------------------------------------------------- computing


def skew_report(
    store: FeatureStore,
    service: str,
    since: datetime | date,
    until: datetime | date | None = None,
    *,
    actor: str | None = None,
    record: bool = True,
) -> SkewReport:
    """Compare the vectors logged for ``service`` with ``since <= request time < until`` with the
    offline values as of each request (see the module's text); recorded in the registry unless
    ``record`` is False or no vector was logged in the window (an empty report is returned, not
    recorded: it would hide the newest real report). A window whose ``until`` is not after
    ``since`` is refused."""
    from featurestore.auth import local_actor

    services = store.feature_services()
    if service not in services:
        raise NotFoundError("feature service", service, project=store.project, candidates=services)
    start = aware_time(since, "The since argument")
    end = aware_time(until, "The until argument") if until is not None else None
    if end is not None and end <= start:
        raise InvalidRequestError(
            f"The skew window of feature service '{service}' is empty: until ({end.isoformat()}) is not after "
            f"since ({start.isoformat()}). Give an until later than since, or none (up to now)."
        )
    logged, outputs = read_served_with_outputs(served_root(store.config), service, start, end)
    features: list[FeatureSkew] = []
    for request in store._resolve(service):
        features += _view_skew(store, request, logged, outputs)
    rows = logged.num_rows
    requests = pc.count_distinct(logged.column("request_id")).as_py() if rows else 0
    report = SkewReport(
        project=store.project,
        service=service,
        since=start,
        until=end,
        computed_at=datetime.now(UTC),
        computed_by=actor or local_actor(),
        requests=requests,
        rows=rows,
        features=tuple(features),
    )
    if record and rows:  # an empty report would hide the newest real one (metrics, UI)
        report = dataclasses.replace(report, id=record_skew_report(store.registry, report.to_dict()))
    return report


def _view_skew(
    store: FeatureStore, request: ViewRequest, logged: pa.Table, outputs: Mapping[str, list[str]]
) -> list[FeatureSkew]:
    view = request.view
    # The logged output column of each of the service's features of this view (full names or not).
    # The logged output columns of each of the service's features of this view: its name, or
    # view__feature for lookups that asked for full names (both when the window holds both).
    served_as: dict[str, list[str]] = {}
    for out, (v, f) in outputs.items():
        if v == view.name and f"value:{out}" in logged.column_names:
            served_as.setdefault(f, []).append(out)
    wanted = [f for f in request.features if f in served_as]
    empty = [FeatureSkew(view.name, f, 0, dict.fromkeys(CLASSES, 0)) for f in request.features if f not in served_as]
    keys = list(view.join_keys)
    if not wanted or not logged.num_rows or any(f"key:{k}" not in logged.column_names for k in keys):
        return [FeatureSkew(view.name, f, 0, dict.fromkeys(CLASSES, 0)) for f in request.features]
    spine = pa.table({**{k: logged.column(f"key:{k}") for k in keys}, "request_time": logged.column("request_time")})
    spine = normalize_spine(spine, "request_time", [ViewRequest(view, ())])
    probe = dataclasses.replace(
        view,
        features=(*view.features, Feature(_EVENT, ValueType.TIMESTAMP), Feature(_WRITTEN, ValueType.TIMESTAMP)),
        ttl=_FOREVER,
    )
    probe_request = ViewRequest(probe, (*wanted, _EVENT, _WRITTEN))
    names = output_names([probe_request], True)
    with tempfile.TemporaryDirectory(prefix="featurestore-skew-") as tmp:
        files = _annotated_files(store, view, spine.select(keys), Path(tmp))
        joined = training_set(spine, "request_time", [probe_request], {view.name: files}, full_names=True)
    request_us = [m or 0 for m in _micros(logged.column("request_time"))]  # never null: the log writes it
    event_col = f"event_time:{view.name}"
    served_et = _micros(logged.column(event_col)) if event_col in logged.column_names else [None] * logged.num_rows
    offline_et = _micros(joined.column(names[(probe.name, _EVENT)]))
    written = _micros(joined.column(names[(probe.name, _WRITTEN)]))
    ttl_us = view.ttl // timedelta(microseconds=1)
    entities = [
        dict(zip(keys, values, strict=True))
        for values in zip(*(spine.column(k).to_pylist() for k in keys), strict=True)
    ]
    result = []
    for f in wanted:
        outs = served_as[f]
        served = logged.column(f"value:{outs[0]}").to_pylist()
        statuses = logged.column(f"status:{outs[0]}").to_pylist()
        for out in outs[1:]:  # a row's value is under the name its lookup used
            other_values = logged.column(f"value:{out}").to_pylist()
            for i, st in enumerate(logged.column(f"status:{out}").to_pylist()):
                if st is not None and statuses[i] is None:
                    served[i], statuses[i] = other_values[i], st
        offline = joined.column(names[(probe.name, f)]).to_pylist()
        # Reports are read with statistics:read, by people who may not read online values.
        hidden = SENSITIVE_TAG in view.feature(f).tags
        counts = dict.fromkeys(CLASSES, 0)
        examples: dict[str, list[dict[str, Any]]] = {}
        for i, status in enumerate(statuses):
            if status is None:  # an entity row of a lookup that did not serve this feature
                continue
            off_et = offline_et[i]
            fresh = off_et is not None and request_us[i] - off_et <= ttl_us
            cls = _classify(status, served[i], served_et[i], offline[i], off_et, fresh, written[i], request_us[i])
            counts[cls] += 1
            if cls != "match" and len(examples.setdefault(cls, [])) < EXAMPLES:
                examples[cls].append(
                    {
                        "entity": entities[i],
                        "request_time": _iso(request_us[i]),
                        "served_value": HIDDEN if hidden else _plain(served[i]),
                        "served_status": status,
                        "served_event_time": _iso(served_et[i]),
                        "offline_value": HIDDEN if hidden else (_plain(offline[i]) if off_et is not None else None),
                        "offline_event_time": _iso(off_et),
                        "offline_written_at": _iso(written[i]),
                    }
                )
        result.append(FeatureSkew(view.name, f, sum(counts.values()), counts, examples))
    return result + empty


def _classify(
    status: str,
    served: Any,
    served_et: int | None,
    offline: Any,
    offline_et: int | None,
    fresh: bool,
    written_us: int | None,
    request_us: int,
) -> str:
    """The class of one served value (see the module's text). Offline's freshness as of the
    request decides first: a training set reads null where offline's row is absent or past the
    TTL, so online withholding a value there agrees with it."""
    if not fresh:
        if status in ("missing", "expired", "null"):
            return "match"  # both absent: online withheld it, training reads null
        if offline_et is None:
            return "differs"  # online served a row offline has none of, as of the request
        return "expired"  # online served a value whose offline row was past the TTL then
    newer = offline_et is not None and (served_et is None or served_et < offline_et)
    if newer and written_us is not None and written_us > request_us:
        return "late"  # offline's live row, newer than what was served, was written after the request
    if status == "missing":
        return "missing_online"
    if status == "expired":
        return "expired"  # online withheld as expired a value offline held live, written before
    if status == "invalid":
        return "differs"
    return "match" if _same(served, offline) else "differs"


def _same(a: Any, b: Any) -> bool:
    if a is None and isinstance(b, float) and not math.isfinite(b):
        return True  # a present value logged as null: the log's JSON holds NaN and infinities so
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _annotated_files(store: FeatureStore, view: FeatureView, keys: pa.Table, folder: Path) -> list[Path]:
    """The view's offline files reduced to the logged entities, each row with its event time and
    when it was written (:data:`_EVENT`, :data:`_WRITTEN`), for the probe view's join."""
    wanted = keys.group_by(keys.column_names).aggregate([])
    written_by: dict[str, datetime] = {}
    out: list[Path] = []
    for i, path in enumerate(store.offline_store.files(view)):
        table = pq.read_table(path)
        if table.num_rows == 0:
            continue
        for k in wanted.column_names:
            table = table.set_column(table.column_names.index(k), k, table.column(k).cast(wanted.schema.field(k).type))
        table = table.join(wanted, wanted.column_names, join_type="left semi")
        if table.num_rows == 0:
            continue
        publisher = store.offline_store.publisher(view, path)
        if publisher not in written_by:
            written_by[publisher] = _written_at(store.registry, publisher, path)
        at = pa.array([written_by[publisher]] * table.num_rows, pa.timestamp("us", tz="UTC"))
        if PUSHED_AT in table.column_names:  # a pushed row was written when it was pushed
            at = pc.coalesce(to_utc_timestamp(table.column(PUSHED_AT)), at)
        table = table.append_column(_EVENT, to_utc_timestamp(table.column(view.timestamp_field)))
        table = table.append_column(_WRITTEN, at)
        target = folder / f"{i}.parquet"
        pq.write_table(table, target)
        out.append(target)
    return out


def _written_at(registry: Registry, run_id: str, path: Path) -> datetime:
    """When the run or push ``run_id`` published: its end as the registry recorded it, else the
    file's modification time."""
    try:
        run = registry.get_run(run_id)
    except NotFoundError:
        run = None
    if run is not None and (run.finished_at or run.started_at):
        return run.finished_at or run.started_at
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _micros(col: pa.ChunkedArray) -> list[int | None]:
    values: list[int | None] = pc.cast(to_utc_timestamp(col), pa.int64()).to_pylist()
    return values


def _iso(micros: int | None) -> str | None:
    return None if micros is None else (_EPOCH + timedelta(microseconds=micros)).isoformat()


def _plain(value: Any) -> Any:
    """A value as JSON holds it: times as ISO 8601, NaN and infinities as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# ---------------------------------------------------------------------------- reading reports


def skew_reports(registry: Registry, project: str, *, service: str | None = None, limit: int = 20) -> list[SkewReport]:
    """The project's recorded reports (of ``service``), newest first."""
    return [SkewReport.from_dict(r.report) for r in list_skew_reports(registry, project, service=service, limit=limit)]


def latest_reports(registry: Registry, project: str) -> list[SkewReport]:
    """Each service's newest report."""
    return [SkewReport.from_dict(r.report) for r in latest_skew_reports(registry, project)]


class SkewCollector:
    """The newest skew report of each feature service as Prometheus gauges, read from the
    registry at most every ``cache_seconds``: ``featurestore_skew_match_rate`` and
    ``featurestore_skew_values`` (by class) per feature, and when the report was computed."""

    def __init__(self, registry: Registry, project: str, *, cache_seconds: float = 5.0) -> None:
        self._registry = registry
        self._project = project
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._reports: list[SkewReport] = []
        self._read_at = -1e18

    def describe(self) -> Iterator[Metric]:
        yield from self._families([])

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at > self._cache_seconds:
                try:
                    self._reports = latest_reports(self._registry, self._project)
                except Exception:  # the registry's own collector says when it is down
                    self._reports = []
                self._read_at = time.monotonic()
            reports = self._reports
        yield from self._families(reports)

    def _families(self, reports: Sequence[SkewReport]) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        rate = GaugeMetricFamily(
            "featurestore_skew_match_rate",
            "Share of served values equal to the offline value as of the request, in the newest skew report.",
            labels=("project", "service", "view", "feature"),
        )
        values = GaugeMetricFamily(
            "featurestore_skew_values",
            "Served values of the newest skew report by class (match, late, differs, missing_online, expired).",
            labels=("project", "service", "view", "feature", "class"),
        )
        computed = GaugeMetricFamily(
            "featurestore_skew_report_timestamp_seconds",
            "When the newest skew report of the feature service was computed (Unix time).",
            labels=("project", "service"),
        )
        for report in reports:
            computed.add_metric((self._project, report.service), report.computed_at.timestamp())
            for f in report.features:
                if f.match_rate is not None:
                    rate.add_metric((self._project, report.service, f.view, f.feature), f.match_rate)
                for cls in CLASSES:
                    values.add_metric((self._project, report.service, f.view, f.feature, cls), f.counts.get(cls, 0))
        yield from (rate, values, computed)

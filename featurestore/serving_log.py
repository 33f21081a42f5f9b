"""The served-vector log: the feature vectors online lookups and predictions served, kept offline.

``featurestore skew`` (:mod:`featurestore.skew`) compares these vectors with what a training set
would have read for the same entity at the same instant. Turned on by the ``serving_log`` section
of ``featurestore.yaml`` (:class:`~featurestore.config.ServingLogConfig`), off by default.

The request's thread does little: it decides whether the request is sampled and puts a
reference to the response on a bounded queue (a few microseconds, measured by
``bench/serving_log.py``). When the queue is full the vector is dropped and counted
(:attr:`ServedVectorLog.dropped`), never waited for. One background thread turns each response
into a small Arrow table as it arrives (spreading the work evenly rather than in bursts that
would hold the interpreter lock) and writes Parquet files when ``flush_rows`` entity rows are
waiting, ``flush_seconds`` after the oldest arrived, on :meth:`ServedVectorLog.flush` and on
:meth:`ServedVectorLog.close`. Files are written under a temporary name and renamed, so readers
never see half a file.

Layout, under ``serving_log.path`` (default ``<offline store path>/_served_vectors``)::

    date=2024-03-01/service=<feature service>/<uuid>.parquet
    date=2024-03-01/service=_views/<uuid>.parquet      lookups naming features, not a service
                                                       (only with serving_log.log_feature_lists;
                                                       featurestore skew reads services only)

One row per entity served: ``request_time`` (the instant the lookup read as now for its TTL check:
the server's clock, or the ``now`` given to ``get_online_features``; UTC), ``request_id``,
``consumer``, ``service``, ``model`` and ``model_version`` (predictions only), the entity keys as
``key:<name>``, and for each feature ``value:<output name>`` (its declared type) and
``status:<output name>``; for each view ``event_time:<view>``, the event time of the stored row
served. The file's metadata maps each output name to its view and feature.

Sampling is decided per request id (a BLAKE2b hash of it against ``sample_rate``), not by a
random draw: a request whose lookups are several (a prediction reading two feature services) is
logged whole or not at all, and a client that sends its own id can find its request in the log:
the datamart's ``POST /v1/online-features``, ``POST /get-online-features`` (Feast) and predict
routes take an ``X-Request-ID`` header (:func:`request_id_from`: up to 128 printable ASCII
characters, else ignored), set :data:`REQUEST_ID` to it for the request and echo it in their
response's ``X-Request-ID`` header. Without one, each lookup gets a random id, so the sample is
random at the configured rate.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import io
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from featurestore.config import ProjectConfig, ServingLogConfig
from featurestore.lookup import FeatureStatus, OnlineResponse

if TYPE_CHECKING:
    from featurestore.lookup import LookupPlan
    from featurestore.store import FeatureStore

log = logging.getLogger(__name__)

SERVED_DIR = "_served_vectors"
"""The log's folder under the offline store's path, unless ``serving_log.path`` says otherwise."""
VIEWS_SERVICE = "_views"
"""The ``service=`` folder of lookups that named features rather than a feature service."""
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("featurestore_request_id", default=None)
"""The id of the request being served, when the caller has one (a server sets it per request)."""
REQUEST_ID_MAX_LENGTH = 128
"""The longest ``X-Request-ID`` a server takes (see :func:`request_id_from`)."""
OUTPUTS_METADATA = b"featurestore.outputs"
"""Key of the Parquet file metadata mapping each output name to ``[view, feature]``."""
_UTC_US = pa.timestamp("us", tz="UTC")
_HASH_SPACE = 2**64
_PRESENT = FeatureStatus.PRESENT
_STATUS_CODE = {s: i for i, s in enumerate(FeatureStatus)}  # PRESENT first: code 0


@functools.cache
def _status_texts() -> pa.Array:
    """The statuses' text by code: made on first use (``pa.array`` imports pandas, which importing
    the store must not)."""
    return pa.array([s.value for s in FeatureStatus], pa.string())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def request_id_from(header: str | None) -> str | None:
    """A client's request id (the ``X-Request-ID`` header) if a server may take it: 1 to
    :data:`REQUEST_ID_MAX_LENGTH` printable ASCII characters; anything else is ignored (None)."""
    if header and len(header) <= REQUEST_ID_MAX_LENGTH and header.isascii() and header.isprintable():
        return header
    return None


def sampled(request_id: str, rate: float) -> bool:
    """Whether the request ``request_id`` is logged at ``rate``: the same answer in every process."""
    if rate >= 1.0:
        return True
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * _HASH_SPACE


@dataclass(frozen=True)
class _Entry:
    at_us: int
    request_id: str
    consumer: str
    service: str | None
    plan: LookupPlan
    response: OnlineResponse
    model: str | None
    versions: Sequence[int] | None


@dataclass(frozen=True)
class ServingLogStats:
    """What the log did since it started: lookups ``queued`` for writing, ``dropped`` because the
    queue was full, entity ``rows_written`` in ``files_written`` files, and failed writes."""

    queued: int
    dropped: int
    rows_written: int
    files_written: int
    write_errors: int


class ServedVectorLog:
    """Logs served vectors to Parquet by UTC day (see the module's text); one per ``FeatureStore``."""

    def __init__(self, settings: ServingLogConfig, root: Path) -> None:
        self.settings = settings
        self.root = root
        self.rate = settings.sample_rate
        self._queue: queue.Queue[_Entry | threading.Event | None] = queue.Queue(settings.queue_size)
        self.queued = 0
        self.dropped = 0
        self.rows_written = 0
        self.files_written = 0
        self.write_errors = 0
        self._closed = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: ProjectConfig) -> ServedVectorLog | None:
        """The project's log, or None when ``serving_log.sample_rate`` is 0 (off)."""
        settings = config.serving_log
        if settings.sample_rate <= 0:
            return None
        return cls(settings, served_root(config))

    # ------------------------------------------------------------------ the request's side

    def log(
        self,
        response: OnlineResponse,
        plan: LookupPlan,
        *,
        consumer: str,
        service: str | None,
        request_id: str | None = None,
        model: str | None = None,
        versions: Sequence[int] | None = None,
    ) -> bool:
        """Queue the vectors of one lookup if its request is sampled; never blocks. False when not
        sampled, dropped (queue full, counted) or the log is closed."""
        rid = request_id or REQUEST_ID.get() or uuid.uuid4().hex
        if self._closed or not sampled(rid, self.rate):
            return False
        at_us = response.served_at_us if response.served_at_us is not None else time.time_ns() // 1000
        entry = _Entry(at_us, rid, consumer, service, plan, response, model, versions)
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1  # a lost update under a race costs one count, not a lock per lookup
            return False
        self.queued += 1
        if self._thread is None:
            self._start()
        return True

    def log_prediction(
        self,
        store: FeatureStore,
        responses: Mapping[str, OnlineResponse],
        *,
        consumer: str,
        model: str,
        versions: Sequence[int],
        services: Mapping[int, str] | None = None,
    ) -> None:
        """Queue the vectors a prediction read (one response per feature service), under one
        request id, each entity with the model version that predicted it. With ``services`` (the
        feature service each version reads), a service's vectors are logged only for the
        entities whose version reads it: under a split whose versions read different services,
        the others were read but not predicted on."""
        rid = REQUEST_ID.get() or uuid.uuid4().hex
        for service, response in responses.items():
            plan = store._lookup_plan(service, False)  # cached: the plan the lookup just used
            used, rows = response, versions
            if services is not None and any(services.get(v) != service for v in versions):
                positions = [i for i, v in enumerate(versions) if services.get(v) == service]
                if not positions:
                    continue
                used, rows = _rows_of(response, positions), [versions[i] for i in positions]
            self.log(used, plan, consumer=consumer, service=service, request_id=rid, model=model, versions=rows)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="featurestore-serving-log", daemon=True)
                self._thread.start()

    # ------------------------------------------------------------------ flushing

    def flush(self, timeout: float = 60.0) -> bool:
        """Write every vector queued so far; True when done within ``timeout`` seconds."""
        if self._thread is None:
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued and stop the writer; later lookups are not logged."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                log.warning("serving log: the writer did not drain its queue in %s s; vectors left unwritten", timeout)
                return
            thread.join(timeout)

    def stats(self) -> ServingLogStats:
        return ServingLogStats(self.queued, self.dropped, self.rows_written, self.files_written, self.write_errors)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        batches: dict[tuple[str, str, int], _Batch] = {}
        rows = 0
        oldest: float | None = None
        while True:
            wait = None if oldest is None else max(0.0, oldest + self.settings.flush_seconds - time.monotonic())
            item: _Entry | threading.Event | None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = threading.Event()  # the time is up: flush, nobody waits on it
            if isinstance(item, _Entry):
                day = datetime.fromtimestamp(item.at_us / 1e6, UTC).date().isoformat()
                key = (day, item.service or VIEWS_SERVICE, id(item.plan))
                batch = batches.get(key)
                try:
                    if batch is None:
                        # Kept only once a lookup is in it: an empty batch would make no table.
                        new = _Batch(item.plan, item.response)
                        rows += new.add(item)
                        batches[key] = new
                    else:
                        rows += batch.add(item)
                except Exception:  # vectors that cannot be written must not stop the log
                    self.write_errors += 1
                    log.exception("serving log: a lookup's vectors could not be converted; skipped")
                    continue
                if oldest is None:
                    oldest = time.monotonic()
                # Let the request threads have the interpreter lock between lookups: converting
                # several at a stretch would make a lookup that wants it back wait for its turn.
                time.sleep(0)
                if rows < self.settings.flush_rows:
                    continue
            by_file: dict[tuple[str, str], list[_Batch]] = {}
            for (day, service, _), batch in batches.items():
                by_file.setdefault((day, service), []).append(batch)
            for file_key, group in by_file.items():
                self._write(file_key, group)
            batches, rows, oldest = {}, 0, None
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()

    def _write(self, key: tuple[str, str], batches: list[_Batch]) -> None:
        day, service = key
        folder = self.root / f"date={day}" / f"service={service}"
        outputs: dict[str, list[str]] = {}
        for batch in batches:
            outputs.update(batch.names)
        tables: list[pa.Table] = []
        for batch in batches:  # each on its own: one batch that cannot be read loses only its rows
            try:
                tables.append(batch.table())
            except Exception:
                self.write_errors += 1
                log.exception("serving log: could not convert %d served rows for %s", batch.rows, folder)
        if not tables:
            return
        try:
            table = pa.concat_tables(tables, promote_options="default")
            table = table.replace_schema_metadata({OUTPUTS_METADATA: json.dumps(outputs).encode()})
            folder.mkdir(parents=True, exist_ok=True)
            name = uuid.uuid4().hex
            tmp = folder / f".{name}.parquet.tmp"
            pq.write_table(table, tmp)
            os.replace(tmp, folder / f"{name}.parquet")
        except Exception:
            self.write_errors += 1
            log.exception(
                "serving log: could not write %d served rows under %s", sum(t.num_rows for t in tables), folder
            )
            return
        self.rows_written += table.num_rows
        self.files_written += 1


class _Batch:
    """The lookups of one feature list waiting to be written, kept as JSON lines (one per lookup,
    its columns as lists) until the file is written: ``orjson`` turns a lookup into bytes about
    three times faster than building Arrow arrays from its lists, and Arrow's JSON reader, C++
    that does not hold the interpreter lock, does the rest (see :meth:`table`)."""

    def __init__(self, plan: LookupPlan, response: OnlineResponse) -> None:
        self.plan = plan  # kept: its id() keys the batch
        self.lines: list[bytes] = []
        self.rows = 0
        types = response.types
        fields = [
            pa.field("request_time", pa.int64()),
            pa.field("request_id", pa.string()),
            pa.field("consumer", pa.string()),
            pa.field("service", pa.string()),
            pa.field("model", pa.string()),
            pa.field("model_version", pa.list_(pa.int64())),
        ]
        self.keys = [(f"key:{k}", k) for k in response.keys]
        fields += [pa.field(c, pa.list_(types[k])) for c, k in self.keys]
        self.values: list[tuple[str, str, str, bool]] = []
        self.names: dict[str, list[str]] = {}
        self.views: list[tuple[str, str]] = []
        for view in plan.views:
            for feature, out in zip(view.features, view.outputs, strict=True):
                if out not in response.columns:
                    continue
                is_time = pa.types.is_timestamp(types[out])
                self.values.append((f"value:{out}", f"status:{out}", out, is_time))
                self.names[out] = [view.view.name, feature]
                fields.append(pa.field(f"value:{out}", pa.list_(pa.int64() if is_time else types[out])))
                fields.append(pa.field(f"status:{out}", pa.list_(pa.int8())))
            if view.view.name in response.event_micros:
                self.views.append((f"event_time:{view.view.name}", view.view.name))
                fields.append(pa.field(f"event_time:{view.view.name}", pa.list_(pa.int64())))
        self.schema = pa.schema(fields)

    def add(self, e: _Entry) -> int:
        """Keep one lookup; returns its entity rows."""
        r = e.response
        n = len(next(iter(r.keys.values()), []))
        record: dict[str, Any] = {
            "request_time": e.at_us,
            "request_id": e.request_id,
            "consumer": e.consumer,
            "service": e.service,
            "model": e.model,
            "model_version": e.versions if e.versions is not None else [None] * n,
        }
        for column, k in self.keys:
            record[column] = r.keys[k]
        for value_column, status_column, out, is_time in self.values:
            values = r.columns[out]
            record[value_column] = (
                [None if v is None else (v - _EPOCH) // _MICROSECOND for v in values] if is_time else values
            )
            statuses = r.statuses[out]
            record[status_column] = (
                [0] * n if statuses.count(_PRESENT) == n else list(map(_STATUS_CODE.__getitem__, statuses))
            )
        for column, view in self.views:
            record[column] = r.event_micros[view]
        self.lines.append(orjson.dumps(record))
        self.rows += n
        return n

    def table(self) -> pa.Table:
        """The lookups as one row per entity (see the module's text)."""
        options = pajson.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore")
        read = pajson.read_json(io.BytesIO(b"\n".join(self.lines)), parse_options=options)
        lists = [f.name for f in self.schema if pa.types.is_list(f.type)]
        parents = pc.list_parent_indices(read.column(lists[0]))
        columns: dict[str, Any] = {
            "request_time": pc.cast(read.column("request_time").take(parents), _UTC_US),
            **{c: read.column(c).take(parents) for c in ("request_id", "consumer", "service", "model")},
        }
        timestamps = {v for v, _, _, is_time in self.values if is_time} | {c for c, _ in self.views}
        for c in lists:
            flat = pc.list_flatten(read.column(c))
            if c.startswith("status:"):
                flat = pc.take(_status_texts(), flat)
            elif c in timestamps:
                flat = pc.cast(flat, _UTC_US)
            columns[c] = flat
        return pa.table(columns)


def _rows_of(response: OnlineResponse, positions: Sequence[int]) -> OnlineResponse:
    """The entities of ``response`` at ``positions`` only."""

    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in positions]

    return OnlineResponse(
        keys={k: pick(v) for k, v in response.keys.items()},
        columns={k: pick(v) for k, v in response.columns.items()},
        statuses={k: pick(v) for k, v in response.statuses.items()},
        event_micros={k: pick(v) for k, v in response.event_micros.items()},
        types=response.types,
        served_at_us=response.served_at_us,
    )


def served_root(config: ProjectConfig) -> Path:
    """Where the project's served vectors are logged."""
    settings = config.serving_log
    if settings.path is not None:
        return config.resolve(settings.path)
    return config.resolve(config.offline_store.path) / SERVED_DIR


def read_served(root: Path, service: str, since: datetime, until: datetime | None = None) -> pa.Table:
    """The vectors logged for ``service`` with ``since <= request_time < until`` (every file of
    the days concerned, their columns united), and the output names' ``[view, feature]``."""
    table, _ = read_served_with_outputs(root, service, since, until)
    return table


def read_served_with_outputs(
    root: Path, service: str, since: datetime, until: datetime | None = None
) -> tuple[pa.Table, dict[str, list[str]]]:
    """As :func:`read_served`, with the output names' ``[view, feature]`` from the files' metadata."""
    first = since.astimezone(UTC).date()
    last = (until or datetime.now(UTC) + timedelta(days=1)).astimezone(UTC).date()
    tables: list[pa.Table] = []
    outputs: dict[str, list[str]] = {}
    if root.is_dir():
        for folder in sorted(root.glob("date=*")):
            try:
                day = datetime.strptime(folder.name.removeprefix("date="), "%Y-%m-%d").date()
            except ValueError:
                continue
            if not first <= day <= last:
                continue
            for path in sorted((folder / f"service={service}").glob("*.parquet")):
                table = pq.read_table(path)
                meta = table.schema.metadata or {}
                if OUTPUTS_METADATA in meta:
                    outputs.update(json.loads(meta[OUTPUTS_METADATA]))
                tables.append(table.replace_schema_metadata(None))
    if not tables:
        return pa.table({"request_time": pa.array([], _UTC_US)}), outputs
    table = pa.concat_tables(tables, promote_options="default")
    times = table.column("request_time")
    mask = pc.greater_equal(times, pa.scalar(since.astimezone(UTC), _UTC_US))
    if until is not None:
        mask = pc.and_(mask, pc.less(times, pa.scalar(until.astimezone(UTC), _UTC_US)))
    return table.filter(mask), outputs


def logged_services(root: Path) -> list[str]:
    """The services whose vectors were logged on some day (for suggestions)."""
    return sorted({p.name.removeprefix("service=") for p in root.glob("date=*/service=*")} - {VIEWS_SERVICE})


__all__ = [
    "REQUEST_ID",
    "SERVED_DIR",
    "ServedVectorLog",
    "ServingLogStats",
    "logged_services",
    "read_served",
    "read_served_with_outputs",
    "request_id_from",
    "sampled",
    "served_root",
]

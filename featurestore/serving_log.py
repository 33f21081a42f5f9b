"""The served-vector log: the feature vectors online lookups and predictions served, kept offline.

``featurestore skew`` (:mod:`featurestore.skew`) compares these vectors with what a training set
would have read for the same entity at the same instant. Turned on by the ``serving_log`` section
of ``featurestore.yaml`` (:class:`~featurestore.config.ServingLogConfig`), off by default.

The request's thread does little: it decides whether the request is sampled and puts a
reference to the response on a bounded queue (a few microseconds, measured by
``bench/serving_log.py``). When the queue is full the vector is dropped and counted
(:attr:`ServedVectorLog.dropped`), never waited for. One background thread, which takes the
queued lookups every 10 ms rather than being woken by each, keeps the responses and converts
them to Arrow a chunk of lookups at a time (one ``pa.array`` per column over about twenty
100-entity lookups, yielding the interpreter lock between columns), and writes Parquet files
when ``flush_rows`` entity rows are waiting, ``flush_seconds`` after the oldest arrived, on
:meth:`ServedVectorLog.flush` and on :meth:`ServedVectorLog.close`. Files are written under a
temporary name and renamed, so readers never see half a file.

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

import collections
import contextvars
import functools
import hashlib
import itertools
import json
import logging
import os
import random
import struct
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
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


_DAY_US = 86_400_000_000
_FLOAT64 = pa.float64()
_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_V4 = (0x8000 << 48) | (4 << 76)
"""The variant (RFC 4122) and version (4) bits of a random UUID, as :class:`uuid.UUID` sets them."""
_POLL_SECONDS = 0.01
"""How often the writer looks for lookups to take when nobody wakes it."""
_CHUNK_ROWS = 2_000
"""Entity rows of a batch converted together (see :class:`_Batch`): few enough that a column's
conversion holds the interpreter lock for tens of microseconds, many enough that the fixed cost
of a ``pa.array`` call is spread over about twenty 100-entity lookups."""


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


class _Entry(NamedTuple):
    """One sampled lookup, as the request's thread queues it: references, nothing converted."""

    at_us: int
    request_id: str | None
    """None: the request had none; the writer gives it a random one."""
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
        # The lookups waiting for the writer, and markers (flush: an event to set; close: None). A
        # deque rather than a queue.Queue: appending takes no lock and wakes no thread; the writer
        # looks every _POLL_SECONDS, or at once when asked (:meth:`flush`, :meth:`close`, or the
        # queue half full), so that lookups following each other do not wake it one by one.
        self._queue: collections.deque[_Entry | threading.Event | None] = collections.deque()
        self._wake = threading.Event()
        self._wake_at = max(1, settings.queue_size // 2)
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
        rid = request_id or REQUEST_ID.get()
        if self._closed:
            return False
        if rid is None:
            # No id: a random one, made by the writer (_random_ids), so a draw at the rate decides
            # what hashing that random id would.
            if self.rate < 1.0 and random.random() >= self.rate:
                return False
        elif not sampled(rid, self.rate):
            return False
        at_us = response.served_at_us if response.served_at_us is not None else time.time_ns() // 1000
        waiting = len(self._queue)
        if waiting >= self.settings.queue_size:
            self.dropped += 1  # a lost update under a race costs one count, not a lock per lookup
            return False
        self._queue.append(_Entry(at_us, rid, consumer, service, plan, response, model, versions))
        self.queued += 1
        if self._thread is None:
            self._start()
        elif waiting + 1 == self._wake_at:
            self._wake.set()
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
        self._queue.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued and stop the writer; later lookups are not logged."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.append(None)
            self._wake.set()
            thread.join(timeout)
            if thread.is_alive():
                log.warning("serving log: the writer did not drain its queue in %s s; vectors left unwritten", timeout)

    def stats(self) -> ServingLogStats:
        return ServingLogStats(self.queued, self.dropped, self.rows_written, self.files_written, self.write_errors)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        batches: dict[tuple[str, str, int], _Batch] = {}
        days: dict[int, str] = {}
        rows = 0
        oldest: float | None = None
        pending = self._queue
        taken = 0
        while True:
            item: _Entry | threading.Event | None
            if pending:
                item = pending.popleft()
            else:
                due = None if oldest is None else oldest + self.settings.flush_seconds - time.monotonic()
                if due is None or due > 0:
                    self._wake.wait(_POLL_SECONDS if due is None else min(_POLL_SECONDS, due))
                    self._wake.clear()  # before looking: a marker appended after it is seen next time
                    continue
                item = threading.Event()  # the time is up: flush, nobody waits on it
            if isinstance(item, _Entry):
                day_number = item.at_us // _DAY_US
                day = days.get(day_number)
                if day is None:
                    day = days[day_number] = datetime.fromtimestamp(item.at_us / 1e6, UTC).date().isoformat()
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
                    log.exception("serving log: a lookup's vectors could not be kept; skipped")
                    continue
                if oldest is None:
                    oldest = time.monotonic()
                taken += 1
                if taken % 16 == 0:  # let the request threads have the interpreter lock now and then
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
                table = batch.table()
            except Exception:
                self.write_errors += 1
                log.exception("serving log: could not convert %d served rows for %s", batch.rows, folder)
            else:
                if table is not None:
                    tables.append(table)
            self.write_errors += batch.failed  # lookups that could not be converted, each counted once
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
    """The lookups of one feature list waiting to be written. :meth:`add` keeps a reference to
    the lookup's response (its lists as the lookup made them) and nothing else; every
    :data:`_CHUNK_ROWS` entity rows, and at the flush, the lookups kept are converted together,
    one ``pa.array`` per column over all of them (statuses as codes, all-present ones a run of
    zeros; absent model versions one null array), yielding the interpreter lock between columns
    so that a lookup waiting for it never waits for more than one column's conversion."""

    def __init__(self, plan: LookupPlan, response: OnlineResponse) -> None:
        self.plan = plan  # kept: its id() keys the batch
        self.pending: list[_Entry] = []
        self.counts: list[int] = []
        self.pending_rows = 0
        self.chunks: list[pa.Table] = []
        self.rows = 0
        self.failed = 0
        """Lookups that could not be converted (their rows are not written)."""
        types = response.types
        fields = [
            pa.field("request_time", _UTC_US),
            pa.field("request_id", pa.string()),
            pa.field("consumer", pa.string()),
            pa.field("service", pa.string()),
            pa.field("model", pa.string()),
            pa.field("model_version", pa.int64()),
        ]
        self.keys = [(f"key:{k}", k, types[k]) for k in response.keys]
        fields += [pa.field(c, t) for c, _, t in self.keys]
        self.values: list[tuple[str, str, str, pa.DataType]] = []
        self.names: dict[str, list[str]] = {}
        self.views: list[tuple[str, str]] = []
        # Each column's place among the fields: (kind, column, source name, type).
        self.columns: list[tuple[str, str, str, pa.DataType]] = [("key", c, k, t) for c, k, t in self.keys]
        for view in plan.views:
            for feature, out in zip(view.features, view.outputs, strict=True):
                if out not in response.columns:
                    continue
                value_type = _UTC_US if pa.types.is_timestamp(types[out]) else types[out]
                self.values.append((f"value:{out}", f"status:{out}", out, value_type))
                self.names[out] = [view.view.name, feature]
                fields.append(pa.field(f"value:{out}", value_type))
                fields.append(pa.field(f"status:{out}", pa.string()))
                self.columns.append(("value", f"value:{out}", out, value_type))
                self.columns.append(("status", f"status:{out}", out, pa.string()))
            if view.view.name in response.event_micros:
                self.views.append((f"event_time:{view.view.name}", view.view.name))
                fields.append(pa.field(f"event_time:{view.view.name}", _UTC_US))
                self.columns.append(("event_time", f"event_time:{view.view.name}", view.view.name, _UTC_US))
        self.schema = pa.schema(fields)

    def add(self, e: _Entry) -> int:
        """Keep one lookup; returns its entity rows."""
        n = len(next(iter(e.response.keys.values()), []))
        self.pending.append(e)
        self.counts.append(n)
        self.rows += n
        self.pending_rows += n
        if self.pending_rows >= _CHUNK_ROWS:
            self._convert()
        return n

    def table(self) -> pa.Table | None:
        """The lookups as one row per entity (see the module's text); None when none could be
        converted."""
        if self.pending:
            self._convert()
        if not self.chunks:
            return None
        return pa.concat_tables(self.chunks)

    def _convert(self) -> None:
        entries, counts = self.pending, self.counts
        self.pending, self.counts, self.pending_rows = [], [], 0
        try:
            self.chunks.append(self._arrays(entries, counts))
            return
        except Exception:
            if len(entries) == 1:
                self.failed += 1
                self.rows -= counts[0]
                log.exception("serving log: a lookup's vectors could not be converted; skipped")
                return
        for entry, n in zip(entries, counts, strict=True):  # each alone: only the bad ones are lost
            self.pending, self.counts = [entry], [n]
            self._convert()

    def _arrays(self, entries: list[_Entry], counts: list[int]) -> pa.Table:
        """The lookups ``entries`` (of ``counts`` entity rows) as one table of the batch's schema."""
        total = sum(counts)
        offsets = pa.array(itertools.accumulate(counts, initial=0), pa.int32())
        # Each entity row's lookup: the per-lookup columns are taken by it.
        parents = pc.list_parent_indices(pa.ListArray.from_arrays(offsets, pa.nulls(total)))
        arrays: list[pa.Array] = [
            pa.array([e.at_us for e in entries], _UTC_US).take(parents),
            pa.array(_request_ids(entries), pa.string()).take(parents),
            pa.array([e.consumer for e in entries], pa.string()).take(parents),
            pa.array([e.service for e in entries], pa.string()).take(parents),
            pa.array([e.model for e in entries], pa.string()).take(parents),
        ]
        if all(e.versions is None for e in entries):
            arrays.append(pa.nulls(total, pa.int64()))
        else:
            versions = (
                itertools.repeat(None, n) if e.versions is None else e.versions
                for e, n in zip(entries, counts, strict=True)
            )
            arrays.append(pa.array(list(itertools.chain.from_iterable(versions)), pa.int64()))
        responses = [e.response for e in entries]
        present: pa.Array | None = None
        for column, (kind, _, name, type_) in enumerate(self.columns, 1):
            if column % 4 == 0:  # a lookup waiting for the interpreter lock gets it every few columns
                time.sleep(0)
            if kind == "status":
                codes = _status_codes([r.statuses[name] for r in responses], counts, total)
                if codes is None:  # all present: one array for every such column of the chunk
                    if present is None:
                        zeros = pa.Array.from_buffers(pa.int8(), total, [None, pa.py_buffer(bytes(total))])
                        present = pc.take(_status_texts(), zeros)
                    arrays.append(present)
                else:
                    arrays.append(pc.take(_status_texts(), codes))
                continue
            values: list[Any] = []
            if kind == "key":
                for r in responses:
                    values += r.keys[name]
            elif kind == "value":
                for r in responses:
                    values += r.columns[name]
            else:
                for r in responses:
                    values += r.event_micros[name]
            if kind == "event_time":  # microseconds: read as integers, viewed as times (half the cost)
                arrays.append(pa.array(values, pa.int64()).view(type_))
            elif type_ == _FLOAT64:
                arrays.append(_floats(values))
            else:
                arrays.append(pa.array(values, type_))
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _floats(values: list[Any]) -> pa.Array:
    """A float64 column: packed by ``struct`` when no value is missing (about half the cost of
    ``pa.array``), else by ``pa.array``."""
    try:
        data = struct.pack(f"{len(values)}d", *values)
    except struct.error:  # None among them
        return pa.array(values, _FLOAT64)
    return pa.Array.from_buffers(_FLOAT64, len(values), [None, pa.py_buffer(data)])


def _request_ids(entries: list[_Entry]) -> list[str]:
    """Each lookup's request id; random ones (version-4 UUIDs as 32 hex digits, as
    ``uuid.uuid4().hex`` writes them) for those that had none, from one read of the system's
    random source for the chunk."""
    missing = sum(e.request_id is None for e in entries)
    if not missing:
        return [e.request_id for e in entries]  # type: ignore[misc]
    raw = os.urandom(16 * missing)
    ids = []
    taken = 0
    for e in entries:
        if e.request_id is not None:
            ids.append(e.request_id)
            continue
        n = int.from_bytes(raw[taken : taken + 16], "big")
        taken += 16
        ids.append(f"{(n & _UUID_CLEAR) | _UUID_V4:032x}")
    return ids


def _status_codes(statuses: list[list[FeatureStatus]], counts: list[int], total: int) -> pa.Array | None:
    """One column's statuses over the lookups of a chunk as int8 codes; None when all present.
    Only the lookups with another status are looked at value by value."""
    codes: bytearray | None = None
    offset = 0
    for values, n in zip(statuses, counts, strict=True):
        if values.count(_PRESENT) != n:  # C speed (identity first)
            if codes is None:
                codes = bytearray(total)  # zeros: present
            codes[offset : offset + n] = bytes(map(_STATUS_CODE.__getitem__, values))
        offset += n
    if codes is None:
        return None
    return pa.Array.from_buffers(pa.int8(), total, [None, pa.py_buffer(codes)])


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

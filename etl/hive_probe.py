"""Probes of Hive tables through Spark: the same answer as :mod:`featurestore.source_probe`
gives for files (reachable, columns, rows, event-time range, partitions, a sample without the
sensitive columns), for a table of the session's metastore.

Partitions come from the metastore (``SHOW PARTITIONS``: no data read); a ``partitions`` date
expression (:mod:`featurestore.partitions`, e.g. ``"dt >= today - 30"``) counts and samples the
selected partitions only, which Spark prunes from the plan. The count and the time range run as
one Spark job, cancelled when ``timeout`` passes (the probe then says they were not counted).

Hive tables are not a source kind of their own yet: a view cannot read one (the engines read
files and SQL sources). This probe is what a Hive source would be checked with.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

from featurestore.partitions import PartitionFilter
from featurestore.source_probe import PartitionInfo, SourceProbe, _json_value, sensitive_among


def _quote(name: str) -> str:
    return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))


def probe_hive_table(
    spark: Any,
    table: str,
    *,
    timestamp_field: str | None = None,
    partitions: str | None = None,
    sensitive: Sequence[str] = (),
    sample_rows: int = 5,
    timeout: float = 60.0,
    today: date | None = None,
) -> SourceProbe:
    """Probe the Hive table ``table`` (``db.name``) of the Spark session ``spark``."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    started = time.perf_counter()
    probed_at = datetime.now(UTC)

    def answer(status: str, message: str, **found: Any) -> SourceProbe:
        return SourceProbe(
            source=table,
            kind="hive",
            status=status,  # type: ignore[arg-type]
            message=message,
            probed_at=probed_at,
            seconds=time.perf_counter() - started,
            **found,
        )

    if not spark.catalog.tableExists(table):
        return answer(
            "missing",
            f"the Hive table '{table}' does not exist in the metastore: check the name (database.table), "
            "or create the table",
        )
    try:
        frame = spark.table(_quote(table))
        columns = tuple((f.name, f.dataType.simpleString()) for f in frame.schema.fields)
    except AnalysisException as err:
        return answer("unreadable", f"the Hive table '{table}' cannot be read: {str(err).splitlines()[0]}")
    names = {n for n, _ in columns}
    found: list[PartitionInfo] = []
    try:
        listed = [r[0] for r in spark.sql(f"SHOW PARTITIONS {_quote(table)}").collect()]
    except AnalysisException:
        listed = []  # not partitioned
    for spec in listed:  # values as Hive escapes them in paths ('2026-01-05T10%3A00'): unquoted
        values = {unquote(k): unquote(v) for k, v in (part.split("=", 1) for part in spec.split("/") if "=" in part)}
        found.append(PartitionInfo(path=spec, values=values, files=0, rows=None))
    notes: list[str] = []
    selected_count = None
    if partitions:
        try:
            chosen = PartitionFilter.parse(partitions)
        except ValueError as err:
            return answer("failed", f"{err}; fix the expression", columns=columns)
        day = today or probed_at.date()
        selected = [p for p in found if chosen.matches(p.values, day)]
        selected_count = len(selected)
        if not selected:
            return answer(
                "missing",
                f"no partition of '{table}' matches '{partitions}' today ({day}): widen the expression",
                columns=columns,
                partitions=tuple(found),
                selected_partitions=0,
            )
        # The expression itself as a range on the partition columns (one condition each, not one
        # equality per selected partition: thousands of them made a plan Spark took long to
        # build); on partition columns only, Spark prunes the partitions from the metastore.
        for c in chosen.conditions:
            text = F.substring(F.col(c.column).cast("string"), 1, 10)
            bound = F.lit(c.bound(day).isoformat())
            compare = {">=": text >= bound, ">": text > bound, "<=": text <= bound, "<": text < bound}
            frame = frame.where(text.rlike(r"^\d{4}-\d{2}-\d{2}$") & compare.get(c.op, text == bound))
    ts = timestamp_field if timestamp_field in names else None
    if timestamp_field and ts is None:
        notes.append(f"the timestamp field '{timestamp_field}' is not a column of the table")
    aggregates = [F.count(F.lit(1))] + ([F.min(ts), F.max(ts)] if ts else [])
    counted = _within(spark, timeout, lambda: frame.agg(*aggregates).collect()[0])
    rows = low = high = None
    if counted is None:
        notes.append(f"rows not counted within the probe's {timeout:g} s")
    else:
        rows = int(counted[0])
        if ts:
            low, high = _aware(counted[1]), _aware(counted[2])
    hidden = sensitive_among((n for n, _ in columns), sensitive)
    shown = [n for n, _ in columns if n not in hidden]
    sample: tuple[dict[str, Any], ...] = ()
    if sample_rows > 0 and shown:
        got = _within(spark, timeout, lambda: frame.select(*shown).limit(sample_rows).collect())
        if got is not None:
            sample = tuple({n: _json_value(r[n]) for n in shown} for r in got)
    return answer(
        "ok",
        "",
        columns=columns,
        row_count=rows,
        time_min=low,
        time_max=high,
        sample=sample,
        sensitive=hidden,
        partitions=tuple(found),
        selected_partitions=selected_count,
        notes=tuple(notes),
    )


def _within(spark: Any, timeout: float, job: Any) -> Any:
    """``job()``'s result, or None when its Spark jobs are cancelled for outlasting ``timeout``."""
    context = spark.sparkContext
    group = f"probe-{uuid.uuid4().hex[:8]}"
    context.setJobGroup(group, "source probe", interruptOnCancel=True)
    timer = threading.Timer(timeout, context.cancelJobGroup, args=(group,))
    timer.start()
    try:
        return job()
    except Exception as err:  # a cancelled job raises Py4J/Spark errors of several kinds
        if "cancel" in str(err).lower():
            return None
        raise
    finally:
        timer.cancel()
        context.setLocalProperty("spark.jobGroup.id", None)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None

"""Dry runs on a sample: a view computed for some of its entities, checked and shown, with
nothing published and nothing recorded (issue 18, part 3).

**The sample is of entities, not rows.** The entities are chosen by a hash of their keys (the
``N`` whose MD5 of the keys is smallest, among those the view's source holds), or named; every
source that has the view's join keys as columns is read for those entities only, and *all* of
their rows, so an aggregate over an entity's rows (a sum, a count over 30 days) is the one the
full run computes. This holds for transformations that compute an entity's rows from that
entity's source rows (the same rule a pandas transformation follows on Spark); one that looks
across entities (the latest date of *any* customer, a rank) can differ on a sample.

The view is computed by the embedded engine into a temporary folder, deleted afterwards; the
quality gate and the statistics run on those files as a run's would. No offline file, online
row, run record or audit entry is written.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from etl.local import LocalEngine
from featurestore.definitions import FeatureView, FileSource, Source, SqlSource, StoredTransformation
from featurestore.errors import ConfigError, InvalidRequestError, RunError
from featurestore.expectations import COLUMN_ARGUMENTS
from featurestore.sql import cursor, literal
from featurestore.sql import quote as _quote
from featurestore.store import FeatureStore
from featurestore.types import ValueType

DEFAULT_SAMPLE = 100
"""Entities a preview computes when none are named."""

SENSITIVE_TAG = "sensitive"
"""A feature tagged ``sensitive`` has its values hidden in a preview's first rows."""

_ENTITIES = "__preview_entities"


@dataclass(frozen=True)
class PreviewStep:
    """One step of a preview: what it did, the rows it gave, how long it took."""

    name: str
    rows: int | None
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "seconds": round(self.seconds, 4), "detail": self.detail}


@dataclass(frozen=True)
class PreviewReport:
    """What a preview computed: its steps, the sampled entities, the first rows of the output,
    the quality gate's report and the statistics (as a run would record them: not recorded)."""

    view: str
    sample: str
    entities: tuple[Mapping[str, Any], ...]
    window: tuple[datetime | None, datetime | None]
    steps: tuple[PreviewStep, ...]
    rows: int
    columns: tuple[str, ...]
    first_rows: tuple[Mapping[str, Any], ...]
    quality: Mapping[str, Any]
    statistics: Mapping[str, Any]
    blocked: bool
    hidden: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        start, end = self.window
        return {
            "view": self.view,
            "sample": self.sample,
            "entities": [dict(e) for e in self.entities],
            "window": {
                "start": None if start is None else start.isoformat(),
                "end": None if end is None else end.isoformat(),
            },
            "steps": [s.to_dict() for s in self.steps],
            "rows": self.rows,
            "columns": list(self.columns),
            "first_rows": [dict(r) for r in self.first_rows],
            "hidden": list(self.hidden),
            "quality": dict(self.quality),
            "statistics": dict(self.statistics),
            "blocked": self.blocked,
            "published": False,
        }

    def render(self, quality_text: str = "", statistics_text: str = "") -> str:
        lines = [f"preview of {self.view}: {self.sample} (nothing published, no run recorded)"]
        width = max(len(s.name) for s in self.steps) if self.steps else 0
        for s in self.steps:
            rows = "" if s.rows is None else f"{s.rows:>10,} rows"
            detail = f"  {s.detail}" if s.detail else ""
            lines.append(f"  {s.name:<{width}}  {rows:>15}  {s.seconds:8.3f} s{detail}")
        lines.append(f"first {len(self.first_rows)} of {self.rows:,} rows:")
        if self.first_rows:
            lines.append("  " + " | ".join(self.columns))
            for r in self.first_rows:
                lines.append("  " + " | ".join(_text(r.get(c)) for c in self.columns))
        if self.hidden:
            lines.append(f"  (values of {', '.join(self.hidden)} hidden: tagged sensitive)")
        if quality_text:
            lines += ["", quality_text]
        if statistics_text:
            lines += ["", statistics_text]
        return "\n".join(lines)


def _text(value: Any) -> str:
    return "null" if value is None else str(value)


class _SampledEngine(LocalEngine):
    """The embedded engine reading only the sampled entities' rows of each source holding the
    view's join keys."""

    def __init__(self, store: FeatureStore, keys: tuple[str, ...], entities: pa.Table) -> None:
        super().__init__(store)
        self.keys = keys
        self.entities = entities
        self.filtered: set[str] = set()

    def _source_conditions(self, con: duckdb.DuckDBPyConnection, source: Source, body: str) -> list[str]:
        try:
            columns = {str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM ({body})").fetchall()}
        except duckdb.Error:
            return []  # the engine's own read names the problem
        if not set(self.keys) <= columns:
            return []
        con.register(_ENTITIES, self.entities)
        self.filtered.add(source.name)
        keys = ", ".join(_quote(k) for k in self.keys)
        if len(self.keys) == 1:
            return [f"{keys} IN (SELECT {keys} FROM {_ENTITIES})"]
        return [f"row({keys}) IN (SELECT row({keys}) FROM {_ENTITIES})"]


def _sources_in_order(source: Source) -> list[Source]:
    """The sources a view reads, inputs before the SQL sources reading them."""
    out: list[Source] = []

    def visit(s: Source) -> None:
        if isinstance(s, SqlSource):
            for up in s.sources:
                visit(up)
        if s.name not in {o.name for o in out}:
            out.append(s)

    visit(source)
    return out


def parse_entities(view: FeatureView, values: Sequence[str]) -> pa.Table:
    """Entities named on the command line or in a request: values of the view's single join
    key (cast to its type), or for a composite key each entity's values joined by ``:``."""
    keys, types = view.join_keys, [view.key_schema[k] for k in view.join_keys]
    columns: list[list[Any]] = [[] for _ in keys]
    for text in values:
        parts = str(text).split(":") if len(keys) > 1 else [str(text)]
        if len(parts) != len(keys):
            raise InvalidRequestError(
                f"entity '{text}' of feature view '{view.name}': give its {len(keys)} keys "
                f"({', '.join(keys)}) joined by ':'",
                argument="entities",
            )
        for i, (part, vt) in enumerate(zip(parts, types, strict=True)):
            if vt is ValueType.INT64:
                try:
                    columns[i].append(int(part.strip()))
                except ValueError as err:
                    raise InvalidRequestError(
                        f"entity '{text}': '{keys[i]}' is an integer key, not '{part}'", argument="entities"
                    ) from err
            else:
                columns[i].append(part.strip())
    arrow = {ValueType.INT64: pa.int64(), ValueType.STRING: pa.string()}
    return pa.table({k: pa.array(c, arrow.get(t, pa.string())) for k, c, t in zip(keys, columns, types, strict=True)})


def _sample_entities(con: duckdb.DuckDBPyConnection, view: FeatureView, sample: int) -> tuple[pa.Table, int, str]:
    """The ``sample`` entities of the view's source (the first source read that has its join
    keys) with the smallest MD5 of their keys, how many it holds, and the source's name."""
    keys = ", ".join(_quote(k) for k in view.join_keys)
    hashed = "md5(concat_ws('|', " + ", ".join(f"CAST({_quote(k)} AS VARCHAR)" for k in view.join_keys) + "))"
    for s in reversed(_sources_in_order(view.source)):  # the view's own source first
        columns = {str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {_quote(s.name)}").fetchall()}
        if set(view.join_keys) <= columns:
            distinct = f"SELECT DISTINCT {keys} FROM {_quote(s.name)} WHERE {' AND '.join(f'{_quote(k)} IS NOT NULL' for k in view.join_keys)}"
            total = int(con.execute(f"SELECT count(*) FROM ({distinct})").fetchall()[0][0])
            table = con.sql(
                f"SELECT {keys} FROM ({distinct}) ORDER BY {hashed}, {keys} LIMIT {int(sample)}"
            ).to_arrow_table()
            return table, total, s.name
    raise RunError(
        f"Feature view '{view.name}': no source it reads has its join keys {list(view.join_keys)} as columns, "
        "so a preview cannot choose entities; name them with --entities (or preview the whole view with a window)"
    )


def preview_view(
    store: FeatureStore,
    view: FeatureView,
    *,
    sample: int | None = None,
    entities: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    rows_shown: int = 10,
) -> PreviewReport:
    """Compute ``view`` over ``[start, end)`` for a sample of its entities (``sample`` of them by
    hash, default :data:`DEFAULT_SAMPLE`, or the ``entities`` named), run its quality gate and
    statistics, and report each step; nothing is published or recorded."""
    from quality.files import reference_time_for, statistics, validate

    if sample is not None and entities:
        raise InvalidRequestError("give a sample size or entities, not both", argument="sample")
    if sample is not None and sample < 1:
        raise InvalidRequestError(f"the sample must be at least 1 entity, got {sample}", argument="sample")
    steps: list[PreviewStep] = []
    lower = None if start is None or view.source_lookback is None else start - view.source_lookback
    with tempfile.TemporaryDirectory(prefix="featurestore-preview-") as folder:
        scratch = Path(folder)
        probe = LocalEngine(store)
        con = probe._connect(scratch / "spill")
        try:
            began = time.perf_counter()
            if entities:
                chosen = parse_entities(view, entities)
                description = f"{chosen.num_rows} named entit{'y' if chosen.num_rows == 1 else 'ies'}"
                detail = ""
            else:
                probe._register_source(con, view.source, lower=lower, upper=end, done=set())
                n = DEFAULT_SAMPLE if sample is None else sample
                chosen, total, where = _sample_entities(con, view, n)
                description = f"{chosen.num_rows} of {total:,} entities, the smallest MD5 of their keys"
                detail = f"from {where}"
            steps.append(PreviewStep("sample entities", chosen.num_rows, time.perf_counter() - began, detail))
        finally:
            con.close()
        engine = _SampledEngine(store, view.join_keys, chosen)
        con = engine._connect(scratch / "spill")
        try:
            engine._register_source(con, view.source, lower=lower, upper=end, done=set())
            for s in _sources_in_order(view.source):
                began = time.perf_counter()
                rows = int(con.execute(f"SELECT count(*) FROM {_quote(s.name)}").fetchall()[0][0])
                kind = "file" if isinstance(s, FileSource) else "SQL"
                what = "sampled entities' rows" if s.name in engine.filtered else "all rows (no join key column)"
                steps.append(PreviewStep(f"read {kind} source {s.name}", rows, time.perf_counter() - began, what))
        except duckdb.Error as err:
            raise RunError(f"Feature view '{view.name}': reading its source failed in DuckDB: {err}") from err
        finally:
            con.close()
        began = time.perf_counter()
        frame = engine.compute(view, start, end, scratch / "run")
        steps.append(PreviewStep("transformation", frame.num_rows, time.perf_counter() - began))
        began = time.perf_counter()
        report = validate(view, frame, reference_time=reference_time_for(end), examples=store.config.quality.examples)
        gate = "blocked" if report.blocked else report.status
        steps.append(PreviewStep("quality gate", frame.num_rows, time.perf_counter() - began, str(gate)))
        began = time.perf_counter()
        stats = statistics(view, frame, bins=store.config.quality.histogram_bins) if frame.num_rows else {}
        steps.append(PreviewStep("statistics", None, time.perf_counter() - began))
        columns, first = _first_rows(view, frame.paths, rows_shown)
    hidden = tuple(f.name for f in view.features if SENSITIVE_TAG in f.tags)
    for row in first:
        for name in hidden:
            row[name] = "***"
    # A sensitive feature's values leak through its statistics (min, max, histogram) and the
    # gate's examples and observed figures as much as through its rows: none of them is shown.
    stats = {name: figures for name, figures in stats.items() if name not in hidden}
    quality = _masked_quality(report.to_dict(), hidden)
    return PreviewReport(
        view=view.name,
        sample=description,
        entities=tuple(chosen.to_pylist()),
        window=(start, end),
        steps=tuple(steps),
        rows=frame.num_rows,
        columns=columns,
        first_rows=tuple(first),
        quality=quality,
        statistics=stats,
        blocked=report.blocked,
        hidden=hidden,
    )


def _masked_quality(quality: dict[str, Any], hidden: Sequence[str]) -> dict[str, Any]:
    """The gate's report with the values of ``hidden`` features masked: in every example row,
    and the observed figure of an expectation on one of them."""
    if not hidden:
        return quality
    for key in ("results", "after_quarantine"):
        for result in quality.get(key) or ():
            result["examples"] = [
                {c: "***" if c in hidden else v for c, v in e.items()} if isinstance(e, dict) else e
                for e in result.get("examples") or ()
            ]
            spec = result.get("spec") or {}
            if any(spec.get(a) in hidden for a in COLUMN_ARGUMENTS) and result.get("observed") is not None:
                result["observed"] = "***"
    return quality


def _first_rows(view: FeatureView, paths: Sequence[Path], n: int) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    columns = (*view.join_keys, view.timestamp_field, *view.feature_names)
    if not paths or n <= 0:
        return columns, []
    listed = "[" + ", ".join(literal(p) for p in paths) + "]"
    order = ", ".join(_quote(c) for c in (*view.join_keys, view.timestamp_field))
    select = ", ".join(_quote(c) for c in columns)
    con = cursor()
    try:
        rows = con.execute(f"SELECT {select} FROM read_parquet({listed}) ORDER BY {order} LIMIT {int(n)}").fetchall()
    finally:
        con.close()
    return columns, [{c: _json(v) for c, v in zip(columns, r, strict=True)} for r in rows]


def _json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def runnable_view(store: FeatureStore, name: str) -> FeatureView:
    """The applied view ``name`` as a preview can compute it: from the registry, its SQL
    transformation being its stored text; a pandas transformation is taken from the project's
    definition files (the registry keeps only its source text), which must define the applied
    version: else a :class:`RunError` naming both versions."""
    view = store.get_feature_view(name)  # NotFoundError with suggestions
    t = view.transformation
    if isinstance(t, StoredTransformation):
        if t.kind == "sql":
            return replace(view, transformation=t.text)
        from featurestore.project_files import load_definitions
        from featurestore.validation import validate_project

        try:
            views = {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}
        except ConfigError as err:  # the server holds no definition files: nothing to run
            raise RunError(
                f"Feature view '{name}' has a pandas transformation, which a preview takes from the project's "
                f"definition files, and they cannot be read here: {err}; preview it with 'featurestore preview'"
            ) from err
        if name not in views:
            raise RunError(
                f"Feature view '{name}' has a pandas transformation, which a preview takes from the project's "
                f"definition files, but they do not define it: apply the project again"
            )
        defined = views[name]
        if defined.schema_fingerprint() != view.schema_fingerprint():
            applied = store.registry.view_version(store.project, name)
            known = {v.fingerprint: v.version for v in store.registry.view_versions(store.project, name)}
            found = known.get(defined.schema_fingerprint())
            files = f"version {found}" if found is not None else "a version never applied"
            raise RunError(
                f"Feature view '{name}': a preview computes the applied view, version {applied}, but the project's "
                f"definition files (where its pandas transformation is taken from) define {files}; apply the "
                "project ('featurestore apply') or restore the applied definition, then preview again"
            )
        # Everything but the function from the registry (features' tags, expectations): the applied view.
        return replace(view, transformation=defined.transformation)
    return view

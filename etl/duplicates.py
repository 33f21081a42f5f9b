"""Duplicates by value: a new view's features compared with the published rows of existing
features on the preview's sample (issue 18, part 4; the exact check is
:mod:`featurestore.duplicates`).

For each new or changed view, the candidates are the registered views describing the same
entities that have published offline rows; a view without candidates is not computed at all.
Otherwise the check is bounded to a recent window, the last ``window`` (30 days) before the
candidates' newest published row: the view is computed over that window as ``featurestore
preview`` computes it (the :data:`~etl.preview.DEFAULT_SAMPLE` entities with the smallest MD5 of
their keys among the source's rows of the window, all of their rows, the view's source lookback
read as a run reads it), and joined with each candidate's published rows of that window (read
through the offline store, every entity's, then those entities kept) on the keys and the event
time. Once ``budget_s`` (10 s) has passed, the views and candidates left are skipped, each noted
(a step under way is not interrupted) (the new view's rows within the time the candidate's rows cover). A pair of
features is judged only when both have a value on at least ``min_rows`` joined rows of at least
``min_entities`` entities, both take at least two values there, and both have one on at least
``min_coverage`` of the rows where either has one (a copy filtered to some customers is another
feature). It is reported when the values are equal on ``equal_share`` of the rows where either
value differs from its feature's most common one (at least ``min_rows`` of those: two unrelated
rare-event flags are both 0 almost everywhere), or their Pearson correlation is at least
``correlation`` in absolute value (numbers and booleans only).
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from etl.local import LocalEngine
from etl.preview import DEFAULT_SAMPLE, _sample_entities, _SampledEngine
from featurestore.definitions import Feature, FeatureView
from featurestore.duplicates import (
    DEFAULT_CORRELATION,
    DEFAULT_EQUAL_SHARE,
    DEFAULT_MIN_COVERAGE,
    DEFAULT_MIN_ENTITIES,
    DEFAULT_MIN_ROWS,
    DuplicateFinding,
    DuplicateKind,
    entity_names,
    feature_owner,
)
from featurestore.sql import literal
from featurestore.sql import quote as q
from featurestore.store import FeatureStore
from featurestore.types import ValueType

NUMERIC = (ValueType.INT64, ValueType.FLOAT64, ValueType.BOOL)
DEFAULT_WINDOW = timedelta(days=30)
"""The values compared: those of the last 30 days of the candidates' published rows."""
DEFAULT_BUDGET_S = 10.0
"""Seconds the check by value may take before it skips the views (and candidates) left."""


class SampleComparer:
    """:class:`featurestore.duplicates.ValueComparer` on the preview's sample of entities."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        sample: int = DEFAULT_SAMPLE,
        correlation: float = DEFAULT_CORRELATION,
        equal_share: float = DEFAULT_EQUAL_SHARE,
        min_rows: int = DEFAULT_MIN_ROWS,
        min_entities: int = DEFAULT_MIN_ENTITIES,
        min_coverage: float = DEFAULT_MIN_COVERAGE,
        cancel: threading.Event | None = None,
        window: timedelta = DEFAULT_WINDOW,
        budget_s: float = DEFAULT_BUDGET_S,
    ) -> None:
        self.store = store
        self.sample = sample
        self.correlation = correlation
        self.equal_share = equal_share
        self.min_rows = min_rows
        self.min_entities = min_entities
        self.min_coverage = min_coverage
        self.cancel = cancel
        self.window = window
        """How far back from the candidates' newest published row the values are compared."""
        self.budget_s = budget_s
        """Seconds after which no further view (or candidate) is compared, each said so."""
        """Once set, no further view is compared (the apply beside the check failed)."""
        self.skipped: list[str] = []
        """Views not compared by value as no other view of their entities has published rows."""
        self.failed: list[str] = []
        """Views whose sample could not be computed, each with the error."""

    def __call__(self, views: Sequence[FeatureView], registered: Sequence[FeatureView]) -> list[DuplicateFinding]:
        findings: list[DuplicateFinding] = []
        deadline = time.monotonic() + self.budget_s
        for view in views:
            if self.cancel is not None and self.cancel.is_set():
                break
            if time.monotonic() > deadline:
                self.failed.append(
                    f"{view.name}: not compared, the check's time budget ({self.budget_s:g} s) was spent"
                )
                continue
            try:
                candidates = [
                    (c, watermark)
                    for c in registered
                    if c.name != view.name
                    and entity_names(c) == entity_names(view)
                    and (watermark := self.store.offline_store.watermark(c)) is not None
                ]
                if not candidates:
                    self.skipped.append(f"{view.name}: no other view of its entities has published rows")
                    continue
                findings.extend(self._compare(view, candidates, deadline))
            except Exception as err:  # the value check never blocks an apply (OSError, ArrowInvalid...)
                self.failed.append(f"{view.name}: computing it on a sample failed: {type(err).__name__}: {err}")
        return findings

    def _compare(
        self, view: FeatureView, candidates: list[tuple[FeatureView, datetime]], deadline: float
    ) -> list[DuplicateFinding]:
        # The window: the last `window` of the candidates' published rows, newest first.
        end = max(watermark for _, watermark in candidates) + timedelta(microseconds=1)
        start = end - self.window
        with tempfile.TemporaryDirectory(prefix="featurestore-duplicates-") as folder:
            scratch = Path(folder)
            probe = LocalEngine(self.store)
            con = probe._connect(scratch / "spill")
            try:  # entities among the source's rows of the window, not its whole history
                probe._register_source(con, view.source, lower=start, upper=end, done=set())
                entities, _, _ = _sample_entities(con, view, self.sample)
            finally:
                con.close()
            engine = _SampledEngine(self.store, view.join_keys, entities)
            frame = engine.compute(view, start, end, scratch / "run")
            if not frame.paths:
                return []
            con = duckdb.connect()
            try:
                con.register("__entities", entities)
                out: list[DuplicateFinding] = []
                for candidate, _ in candidates:
                    if time.monotonic() > deadline:
                        self.failed.append(
                            f"{view.name}: not compared with {candidate.name} and the views after it, "
                            f"the check's time budget ({self.budget_s:g} s) was spent"
                        )
                        break
                    published = self.store.offline_store.read(candidate, start, end)
                    out.extend(self._pairs(con, view, list(frame.paths), candidate, published))
                return out
            finally:
                con.close()

    def _pairs(
        self, con: duckdb.DuckDBPyConnection, view: FeatureView, paths: list[Path], old: FeatureView, rows: pa.Table
    ) -> list[DuplicateFinding]:
        """The pairs of ``view``'s features (computed into ``paths``) and ``old``'s (its published
        ``rows``) found equal or correlated on the sampled entities (``__entities``)."""
        keys = [q(k) for k in view.join_keys]
        pairs = [
            (i, f, j, g)
            for i, f in enumerate(view.features)
            for j, g in enumerate(old.features)
            if (f.dtype in NUMERIC and g.dtype in NUMERIC) or (f.dtype == g.dtype == ValueType.STRING)
        ]
        if not pairs:
            return []
        key_list = ", ".join(keys)
        wanted = keys[0] if len(keys) == 1 else f"row({key_list})"

        def value(side: str, feature: Feature) -> str:
            column = f"{side}.{q(feature.name)}"
            return column if feature.dtype == ValueType.STRING else f"CAST({column} AS DOUBLE)"

        # The new view's rows within the time the candidate's rows cover, each with the
        # candidate's values at the same entity and event time (NULL where it has none).
        columns = [f"{value('n', f)} AS a{i}" for i, f in enumerate(view.features)]
        columns += [f"{value('o', g)} AS b{j}" for j, g in enumerate(old.features)]
        con.register("__published", rows)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __joined AS "
            f"WITH n AS (SELECT *, CAST({q(view.timestamp_field)} AS TIMESTAMPTZ) AS __t "
            f"FROM read_parquet([{', '.join(literal(p) for p in paths)}])), "
            f"o AS (SELECT *, CAST({q(old.timestamp_field)} AS TIMESTAMPTZ) AS __t "
            f"FROM __published "
            f"WHERE {wanted} IN (SELECT {wanted} FROM __entities)) "
            f"SELECT {wanted} AS __entity, {', '.join(columns)} FROM n LEFT JOIN o USING ({key_list}, __t) "
            f"WHERE n.__t BETWEEN (SELECT min(__t) FROM o) AND (SELECT max(__t) FROM o)"
        )
        used_a = sorted({i for i, _, _, _ in pairs})
        used_b = sorted({j for _, _, j, _ in pairs})
        modes = [f"mode(a{i}) AS ma{i}" for i in used_a] + [f"mode(b{j}) AS mb{j}" for j in used_b]
        aggregates = []
        for i, f, j, _ in pairs:
            a, b = f"a{i}", f"b{j}"
            both = f"{a} IS NOT NULL AND {b} IS NOT NULL"
            # Rows that say something: where either value differs from its most common one (two
            # rare-event flags are both 0 almost everywhere, which says nothing).
            telling = f"{both} AND ({a} IS DISTINCT FROM m.ma{i} OR {b} IS DISTINCT FROM m.mb{j})"
            if f.dtype == ValueType.STRING:
                equal, corr = f"{a} = {b}", "NULL"
            else:
                equal, corr = f"abs({a} - {b}) <= 1e-9 * greatest(1, abs({b}))", f"corr({a}, {b})"
            aggregates += [
                f"count(*) FILTER (WHERE {both})",
                f"count(*) FILTER (WHERE {a} IS NOT NULL OR {b} IS NOT NULL)",
                f"count(*) FILTER (WHERE {telling})",
                f"count(*) FILTER (WHERE {telling} AND {equal})",
                f"least(count(DISTINCT {a}) FILTER (WHERE {both}), count(DISTINCT {b}) FILTER (WHERE {both}))",
                f"count(DISTINCT __entity) FILTER (WHERE {both})",
                corr,
            ]
        row = con.execute(
            f"WITH m AS (SELECT {', '.join(modes)} FROM __joined) SELECT {', '.join(aggregates)} FROM __joined, m"
        ).fetchall()[0]
        findings = []
        for at, (_, f, _, g) in enumerate(pairs):
            n, either, telling, equal, distinct, entities, r = row[7 * at : 7 * at + 7]
            coverage = n / either if either else 0.0
            if n < self.min_rows or distinct < 2 or entities < self.min_entities or coverage < self.min_coverage:
                continue
            found: tuple[DuplicateKind, float, int] | None = None
            if telling >= self.min_rows and equal / telling >= self.equal_share:
                found = ("equal", equal / telling, int(telling))
            elif r is not None and abs(r) >= self.correlation:
                found = ("correlated", float(r), int(n))
            if found is not None:
                findings.append(
                    DuplicateFinding(
                        feature=f"{view.name}:{f.name}",
                        duplicate_of=f"{old.name}:{g.name}",
                        owner=feature_owner(old, g.name),
                        kind=found[0],
                        figure=round(found[1], 6),
                        rows=found[2],
                        coverage=round(coverage, 4),
                    )
                )
        return findings

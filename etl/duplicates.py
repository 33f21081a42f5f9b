"""Duplicates by value: a new view's features compared with the published rows of existing
features on the preview's sample (issue 18, part 4; the exact check is
:mod:`featurestore.duplicates`).

For each new or changed view, the candidates are the registered views describing the same
entities that have published offline rows; a view without candidates is not computed at all.
Otherwise the view is computed as ``featurestore preview`` computes it (the
:data:`~etl.preview.DEFAULT_SAMPLE` entities with the smallest MD5 of their keys, all of their
source rows), and joined with each candidate's published rows of those entities on the keys and
the event time. A pair of features is reported when, over at least ``min_rows`` joined rows
where both have a value, the values are equal on ``equal_share`` of them (and the new feature
takes at least two values there: two constant columns say nothing), or their Pearson
correlation is at least ``correlation`` in absolute value (numbers and booleans only).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb

from etl.local import LocalEngine
from etl.preview import DEFAULT_SAMPLE, _sample_entities, _SampledEngine
from featurestore.definitions import FeatureView
from featurestore.duplicates import (
    DEFAULT_CORRELATION,
    DEFAULT_EQUAL_SHARE,
    DEFAULT_MIN_ROWS,
    DuplicateFinding,
    entity_names,
    feature_owner,
)
from featurestore.errors import FeatureStoreError
from featurestore.sql import literal
from featurestore.sql import quote as q
from featurestore.store import FeatureStore
from featurestore.types import ValueType

NUMERIC = (ValueType.INT64, ValueType.FLOAT64, ValueType.BOOL)


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
    ) -> None:
        self.store = store
        self.sample = sample
        self.correlation = correlation
        self.equal_share = equal_share
        self.min_rows = min_rows
        self.skipped: list[str] = []
        """Views not compared by value as no other view of their entities has published rows."""
        self.failed: list[str] = []
        """Views whose sample could not be computed, each with the error."""

    def __call__(self, views: Sequence[FeatureView], registered: Sequence[FeatureView]) -> list[DuplicateFinding]:
        findings: list[DuplicateFinding] = []
        for view in views:
            candidates = [
                (c, files)
                for c in registered
                if c.name != view.name
                and entity_names(c) == entity_names(view)
                and (files := self.store.offline_store.files(c))
            ]
            if not candidates:
                self.skipped.append(f"{view.name}: no other view of its entities has published rows")
                continue
            try:
                findings.extend(self._compare(view, candidates))
            except (FeatureStoreError, duckdb.Error) as err:  # the value check never blocks an apply
                self.failed.append(f"{view.name}: computing it on a sample failed: {err}")
        return findings

    def _compare(self, view: FeatureView, candidates: list[tuple[FeatureView, list[Path]]]) -> list[DuplicateFinding]:
        with tempfile.TemporaryDirectory(prefix="featurestore-duplicates-") as folder:
            scratch = Path(folder)
            probe = LocalEngine(self.store)
            con = probe._connect(scratch / "spill")
            try:
                probe._register_source(con, view.source, lower=None, upper=None, done=set())
                entities, _, _ = _sample_entities(con, view, self.sample)
            finally:
                con.close()
            engine = _SampledEngine(self.store, view.join_keys, entities)
            frame = engine.compute(view, None, None, scratch / "run")
            if not frame.paths:
                return []
            con = duckdb.connect()
            try:
                con.register("__entities", entities)
                out: list[DuplicateFinding] = []
                for candidate, files in candidates:
                    out.extend(self._pairs(con, view, list(frame.paths), candidate, files))
                return out
            finally:
                con.close()

    def _pairs(
        self, con: duckdb.DuckDBPyConnection, view: FeatureView, paths: list[Path], old: FeatureView, files: list[Path]
    ) -> list[DuplicateFinding]:
        keys = [q(k) for k in view.join_keys]
        pairs = [
            (f, g)
            for f in view.features
            for g in old.features
            if (f.dtype in NUMERIC and g.dtype in NUMERIC) or (f.dtype == g.dtype == ValueType.STRING)
        ]
        if not pairs:
            return []
        aggregates = []
        for i, (f, g) in enumerate(pairs):
            a, b = f"n.{q(f.name)}", f"o.{q(g.name)}"
            both = f"{a} IS NOT NULL AND {b} IS NOT NULL"
            if f.dtype == ValueType.STRING:
                equal, corr = f"{a} = {b}", "NULL"
            else:
                a, b = f"CAST({a} AS DOUBLE)", f"CAST({b} AS DOUBLE)"
                equal = f"abs({a} - {b}) <= 1e-9 * greatest(1, abs({b}))"
                corr = f"corr({a}, {b})"
            aggregates += [
                f"count(*) FILTER (WHERE {both}) AS n{i}",
                f"count(*) FILTER (WHERE {both} AND {equal}) AS e{i}",
                f"count(DISTINCT {a}) FILTER (WHERE {both}) AS d{i}",
                f"{corr} AS r{i}",
            ]
        new_time = f"CAST({q(view.timestamp_field)} AS TIMESTAMPTZ) AS __t"
        old_time = f"CAST({q(old.timestamp_field)} AS TIMESTAMPTZ) AS __t"
        key_list = ", ".join(keys)
        wanted = keys[0] if len(keys) == 1 else f"row({key_list})"
        sql = (
            f"WITH n AS (SELECT *, {new_time} FROM read_parquet([{', '.join(literal(p) for p in paths)}])), "
            f"o AS (SELECT *, {old_time} FROM read_parquet([{', '.join(literal(p) for p in files)}], "
            f"union_by_name = true) WHERE {wanted} IN (SELECT {wanted} FROM __entities)) "
            f"SELECT {', '.join(aggregates)} FROM n JOIN o USING ({key_list}, __t)"
        )
        row = con.execute(sql).fetchall()[0]
        findings = []
        for i, (f, g) in enumerate(pairs):
            n, equal, distinct, r = row[4 * i : 4 * i + 4]
            if not n or n < self.min_rows:
                continue
            found = None
            if distinct >= 2 and equal / n >= self.equal_share:
                found = ("equal", equal / n)
            elif r is not None and abs(r) >= self.correlation:
                found = ("correlated", float(r))
            if found is not None:
                findings.append(
                    DuplicateFinding(
                        feature=f"{view.name}:{f.name}",
                        duplicate_of=f"{old.name}:{g.name}",
                        owner=feature_owner(old, g.name),
                        kind=found[0],  # type: ignore[arg-type]
                        figure=round(found[1], 6),
                        rows=int(n),
                    )
                )
        return findings

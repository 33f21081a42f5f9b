"""What the quality gate found: one result per expectation, readable and storable as JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

from featurestore.definitions import FeatureView
from featurestore.expectations import Expectation, Severity

Status = Literal["passed", "warned", "quarantined", "blocked"]
"""``blocked``: a blocking expectation failed and nothing was published. ``quarantined``: rows
failing blocking expectations were set aside and the others published. ``warned``: only
``warn`` expectations failed; everything was published. ``passed``: every expectation held."""

DEFAULT_EXAMPLES = 5
"""Failing rows shown per expectation in a report, by default."""


def reference_time_for(end: datetime | None, now: datetime | None = None) -> datetime:
    """The time freshness is judged at: the run's window end when it has one in the past (a
    backfill is judged at its own end), else now."""
    now = now or datetime.now(UTC)
    return now if end is None else min(end, now)


def example_columns(view: FeatureView, expectation: Expectation, available: Sequence[str]) -> list[str]:
    """The columns shown in an example row: keys, event time, then what the expectation checks."""
    wanted = [*view.join_keys, view.timestamp_field, *expectation.columns(view.join_keys, view.timestamp_field)]
    return [c for c in dict.fromkeys(wanted) if c in available]


def json_value(value: Any) -> Any:
    """``value`` as plain JSON data: numpy and pandas scalars unwrapped, times as ISO 8601 text,
    NaN and infinities as ``None``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # numpy's float64 too
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    try:
        if value != value:  # NaN-like scalars of numpy and pandas (NaT, pd.NA compare unequal to themselves)
            return None
    except (TypeError, ValueError):  # pd.NA refuses to be a bool
        return None
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamp
    if callable(isoformat):
        return str(isoformat())
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return json_value(item())
    return str(value)


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation on one frame.

    ``failed_rows`` counts the rows that fail a row-level expectation (``None`` for a
    table-level one such as a row count, whose ``observed`` value says what was found).
    ``examples`` are a few failing rows (keys, event time and the checked columns). ``error``
    is set when Great Expectations could not evaluate the expectation at all (a failure)."""

    expectation: str
    kind: str
    severity: Severity
    spec: dict[str, Any]
    success: bool
    rows_checked: int
    failed_rows: int | None = None
    observed: Any = None
    examples: tuple[dict[str, Any], ...] = ()
    error: str | None = None

    @property
    def failed_fraction(self) -> float | None:
        if self.failed_rows is None or not self.rows_checked:
            return None
        return self.failed_rows / self.rows_checked

    @property
    def row_level(self) -> bool:
        """Whether the failing rows are known (so they could be quarantined)."""
        return self.failed_rows is not None and self.error is None

    def line(self) -> str:
        """One line: verdict, severity, the expectation and what failed."""
        if self.success:
            return f"  ok              {self.expectation}"
        verdict = "FAILED (block)" if self.severity == "block" else "FAILED (warn) "
        if self.error is not None:
            detail = f"could not be evaluated: {self.error}"
        elif self.failed_rows is not None:
            fraction = self.failed_fraction
            share = f" ({fraction:.2%})" if fraction is not None else ""
            detail = f"{self.failed_rows:,} of {self.rows_checked:,} rows fail{share}"
        else:
            detail = f"observed {self.observed!r}"
        return f"  {verdict}  {self.expectation}: {detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation,
            "kind": self.kind,
            "severity": self.severity,
            "spec": self.spec,
            "success": self.success,
            "rows_checked": self.rows_checked,
            "failed_rows": self.failed_rows,
            "failed_fraction": self.failed_fraction,
            "observed": json_value(self.observed),
            "examples": [json_value(e) for e in self.examples],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectationResult:
        return cls(
            expectation=data["expectation"],
            kind=data["kind"],
            severity=data["severity"],
            spec=dict(data["spec"]),
            success=bool(data["success"]),
            rows_checked=int(data["rows_checked"]),
            failed_rows=data.get("failed_rows"),
            observed=data.get("observed"),
            examples=tuple(data.get("examples", ())),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class QuarantineInfo:
    """Rows set aside by a run: how many, where (a Parquet file or, on Spark, folder), and which
    expectations they failed (expectation → rows; a row may fail several)."""

    rows: int
    path: str
    by_expectation: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "path": self.path, "by_expectation": dict(self.by_expectation)}


@dataclass(frozen=True)
class QualityReport:
    """The quality gate's verdict on a frame of one view.

    ``results`` are those of the computed frame. When the run quarantined rows, ``quarantine``
    says what was set aside and ``after_quarantine`` lists the expectations that still failed on
    the rows left (a row count below its minimum, say): any blocking one there blocks the run."""

    view: str
    rows: int
    engine: str
    checked_at: datetime
    reference_time: datetime
    results: tuple[ExpectationResult, ...] = ()
    quarantine: QuarantineInfo | None = None
    after_quarantine: tuple[ExpectationResult, ...] = ()

    @property
    def failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success]

    @property
    def blocking_failures(self) -> list[ExpectationResult]:
        """The failed ``block`` expectations that stop the run (after quarantine, if any)."""
        pool = self.after_quarantine if self.quarantine is not None else self.results
        return [r for r in pool if not r.success and r.severity == "block"]

    @property
    def warnings(self) -> list[ExpectationResult]:
        pool = [*self.results, *self.after_quarantine]
        return [r for r in pool if not r.success and r.severity == "warn"]

    @property
    def status(self) -> Status:
        if self.blocking_failures:
            return "blocked"
        if self.quarantine is not None:
            return "quarantined"
        if self.warnings:
            return "warned"
        return "passed"

    @property
    def blocked(self) -> bool:
        return self.status == "blocked"

    def with_quarantine(self, quarantine: QuarantineInfo, after: QualityReport) -> QualityReport:
        """This report, noting rows set aside and what still failed on the rows left (``after``)."""
        return replace(self, quarantine=quarantine, after_quarantine=tuple(after.failures))

    def render(self) -> str:
        """The report as text: the verdict, then every failed expectation with a few example rows."""
        head = f"Quality gate of feature view '{self.view}' on {self.rows:,} computed rows: {self.status.upper()}"
        if self.status == "blocked":
            n = len(self.blocking_failures)
            head += f" ({n} blocking expectation{'s' if n != 1 else ''} failed)"
        lines = [head]
        for result in self.results:
            if result.success:
                continue
            lines.append(result.line())
            lines.extend(f"      e.g. {_example(e)}" for e in result.examples)
        if self.quarantine is not None:
            q = self.quarantine
            lines.append(f"  quarantined {q.rows:,} rows to {q.path}")
            for result in self.after_quarantine:
                lines.append(result.line() + " (on the rows left after quarantine)")
        passed = sum(r.success for r in self.results)
        if passed:
            lines.append(f"  {passed} expectation{'s' if passed != 1 else ''} passed")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "status": self.status,
            "rows": self.rows,
            "engine": self.engine,
            "checked_at": self.checked_at.isoformat(),
            "reference_time": self.reference_time.isoformat(),
            "results": [r.to_dict() for r in self.results],
            "quarantine": None if self.quarantine is None else self.quarantine.to_dict(),
            "after_quarantine": [r.to_dict() for r in self.after_quarantine],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityReport:
        q = data.get("quarantine")
        return cls(
            view=data["view"],
            rows=int(data["rows"]),
            engine=data["engine"],
            checked_at=datetime.fromisoformat(data["checked_at"]),
            reference_time=datetime.fromisoformat(data["reference_time"]),
            results=tuple(ExpectationResult.from_dict(r) for r in data.get("results", ())),
            quarantine=None if q is None else QuarantineInfo(q["rows"], q["path"], dict(q.get("by_expectation", {}))),
            after_quarantine=tuple(ExpectationResult.from_dict(r) for r in data.get("after_quarantine", ())),
        )


def _example(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json_value(v)!r}" for k, v in row.items())

"""Expectations: what a feature view's computed rows must satisfy before a run publishes them.

Declared with the view (``FeatureView(expectations=(...))``) as frozen, typed data, stored in
the registry with its spec, and checked by the quality gate (``quality/``, on Great
Expectations) on every run, before anything is published. Each has a severity:

* ``"block"`` (the default): a failure fails the run and nothing is published, offline or
  online (unless the run quarantines the failing rows, see ``quality``);
* ``"warn"``: the run publishes and records the failure in its quality report.

This module is pure: it imports neither Great Expectations nor any engine. Constructors check
Python types at once; what needs the view (an unknown column, a bound of the wrong type, a
regular expression that does not compile) is reported by :meth:`Expectation.problems`, which
:func:`featurestore.validation.validate_project` calls for every view, so ``apply`` lists every
problem of a project in one error. A :class:`GxExpectation`'s name and arguments are checked
at ``apply`` against the installed Great Expectations' files, without importing it
(:mod:`featurestore.gx_catalog`); what only Great Expectations can tell is checked when a run
builds the expectation.

Expectations are not part of a view's schema fingerprint: changing them does not make a new
version, since the rows a version stores keep their meaning. A run refuses to start when the
expectations in the project's files differ from the applied ones, so a run is always checked
against the rules the registry shows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal, TypeAlias

from featurestore.errors import DefinitionError
from featurestore.types import ValueType

Severity: TypeAlias = Literal["block", "warn"]
SEVERITIES: tuple[Severity, ...] = ("block", "warn")

Bound: TypeAlias = int | float
SetValue: TypeAlias = str | int | float | bool

_NUMERIC = (ValueType.INT64, ValueType.FLOAT64)

COLUMN_ARGUMENTS = ("column", "column_A", "column_B")
"""Arguments of Great Expectations expectations that name one column."""
COLUMN_LIST_ARGUMENTS = ("column_list", "column_set")
"""Arguments of Great Expectations expectations that name several columns."""


def _is_bound(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Expectation:
    """Base of every expectation: a severity, a spec for the registry and a description."""

    severity: Severity = field(default="block", kw_only=True)

    kind: ClassVar[str] = ""
    row_level: ClassVar[bool] = False
    """Whether a failure names the failing rows (which can then be quarantined)."""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise DefinitionError(
                [
                    f"{self.describe()}: severity must be 'block' (the run fails) or 'warn' (it publishes), got {self.severity!r}"
                ]
            )

    def columns(self, keys: Sequence[str], timestamp_field: str) -> tuple[str, ...]:
        """The columns the expectation reads, given the view's keys and timestamp field."""
        return ()

    def describe(self) -> str:
        """A short human statement of the expectation, e.g. ``spend_7d in [0, +inf)``."""
        raise NotImplementedError

    def problems(self, view: str, columns: Mapping[str, ValueType]) -> list[str]:
        """What is wrong with the expectation on a view with ``columns`` (keys, timestamp and features)."""
        return []

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, **self._arguments()}

    def _arguments(self) -> dict[str, Any]:
        return {}

    def _where(self, view: str) -> str:
        return f"Feature view '{view}': expectation {self.describe()}"


def _unknown_column(exp: Expectation, view: str, column: str, columns: Mapping[str, ValueType]) -> list[str]:
    from featurestore.errors import did_you_mean

    if column in columns:
        return []
    return [
        f"{exp._where(view)} names column '{column}', which the view does not have.{did_you_mean(column, columns)} "
        f"Columns: {list(columns)}"
    ]


def _check_column_name(exp_name: str, column: object) -> str:
    if not isinstance(column, str) or not column:
        raise DefinitionError([f"{exp_name} needs a column name (a string), got {column!r}"])
    return column


@dataclass(frozen=True)
class _ColumnExpectation(Expectation):
    column: str

    def __post_init__(self) -> None:
        _check_column_name(type(self).__name__, self.column)
        super().__post_init__()

    def columns(self, keys: Sequence[str], timestamp_field: str) -> tuple[str, ...]:
        return (self.column,)

    def problems(self, view: str, columns: Mapping[str, ValueType]) -> list[str]:
        return _unknown_column(self, view, self.column, columns)

    def _arguments(self) -> dict[str, Any]:
        return {"column": self.column}


@dataclass(frozen=True)
class NotNull(_ColumnExpectation):
    """Every row has a value in ``column`` (NaN counts as no value)."""

    kind: ClassVar[str] = "not_null"
    row_level: ClassVar[bool] = True

    def describe(self) -> str:
        return f"{self.column} is not null"


@dataclass(frozen=True)
class InRange(_ColumnExpectation):
    """Every non-null value of a numeric ``column`` lies within ``[min, max]`` (a missing bound is
    open; ``strict_min``/``strict_max`` exclude the bound itself). Nulls are not checked: use
    :class:`NotNull` for them."""

    min: Bound | None = field(default=None, kw_only=True)
    max: Bound | None = field(default=None, kw_only=True)
    strict_min: bool = field(default=False, kw_only=True)
    strict_max: bool = field(default=False, kw_only=True)

    kind: ClassVar[str] = "in_range"
    row_level: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name, value in (("min", self.min), ("max", self.max)):
            if value is not None and not _is_bound(value):
                raise DefinitionError([f"InRange('{self.column}') {name} must be a number or None, got {value!r}"])
        super().__post_init__()

    def describe(self) -> str:
        lo = "(-inf" if self.min is None else ("(" if self.strict_min else "[") + f"{self.min:g}"
        hi = "+inf)" if self.max is None else f"{self.max:g}" + (")" if self.strict_max else "]")
        return f"{self.column} in {lo}, {hi}"

    def problems(self, view: str, columns: Mapping[str, ValueType]) -> list[str]:
        out = super().problems(view, columns)
        if self.min is None and self.max is None:
            out.append(f"{self._where(view)} has no bound: give min=, max= or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            out.append(f"{self._where(view)}: min {self.min} is greater than max {self.max}")
        for name, value in (("min", self.min), ("max", self.max)):
            if value is not None and not math.isfinite(value):
                out.append(f"{self._where(view)}: {name} must be finite; leave it out for an open bound")
        if self.column in columns and columns[self.column] not in _NUMERIC:
            out.append(
                f"{self._where(view)}: column '{self.column}' is {columns[self.column].value}, not a number; "
                "InRange checks int64 and float64 columns"
            )
        return out

    def _arguments(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "min": self.min,
            "max": self.max,
            "strict_min": self.strict_min,
            "strict_max": self.strict_max,
        }


@dataclass(frozen=True)
class InSet(_ColumnExpectation):
    """Every non-null value of ``column`` is one of ``values``."""

    values: tuple[SetValue, ...] = ()

    kind: ClassVar[str] = "in_set"
    row_level: ClassVar[bool] = True

    def __post_init__(self) -> None:
        values = self.values
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | set | frozenset):
            raise DefinitionError([f"InSet('{self.column}') values must be a sequence of values, got {values!r}"])
        if not all(isinstance(v, str | int | float | bool) for v in values):
            raise DefinitionError(
                [f"InSet('{self.column}') values must be strings, numbers or booleans, got {list(values)!r}"]
            )
        object.__setattr__(self, "values", tuple(values))
        super().__post_init__()

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:6]) + (", ..." if len(self.values) > 6 else "")
        return f"{self.column} in {{{shown}}}"

    def problems(self, view: str, columns: Mapping[str, ValueType]) -> list[str]:
        out = super().problems(view, columns)
        if not self.values:
            out.append(f"{self._where(view)} allows no value: give values=(...)")
        dtype = columns.get(self.column)
        if dtype is ValueType.STRING and not all(isinstance(v, str) for v in self.values):
            out.append(f"{self._where(view)}: column '{self.column}' holds strings; give string values")
        if dtype in _NUMERIC and not all(_is_bound(v) for v in self.values):
            out.append(f"{self._where(view)}: column '{self.column}' holds numbers; give numeric values")
        if dtype is ValueType.BOOL and not all(isinstance(v, bool) for v in self.values):
            out.append(f"{self._where(view)}: column '{self.column}' holds booleans; give True and/or False")
        if dtype is ValueType.TIMESTAMP:
            out.append(f"{self._where(view)}: column '{self.column}' holds timestamps; InSet checks other types")
        return out

    def _arguments(self) -> dict[str, Any]:
        return {"column": self.column, "values": list(self.values)}


@dataclass(frozen=True)
class MatchesRegex(_ColumnExpectation):
    """Every non-null value of a string ``column`` contains a match of ``pattern`` (anchor it
    with ``^...$`` to match whole values), as Great Expectations and Spark's ``rlike`` do."""

    pattern: str = ""

    kind: ClassVar[str] = "matches_regex"
    row_level: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise DefinitionError([f"MatchesRegex('{self.column}') pattern must be a string, got {self.pattern!r}"])
        super().__post_init__()

    def describe(self) -> str:
        return f"{self.column} matches /{self.pattern}/"

    def problems(self, view: str, columns: Mapping[str, ValueType]) -> list[str]:
        out = super().problems(view, columns)
        if not self.pattern:
            out.append(f"{self._where(view)} has an empty pattern")
        try:
            re.compile(self.pattern)
        except re.error as err:
            out.append(f"{self._where(view)}: the pattern is not a valid regular expression: {err}")
        if self.column in columns and columns[self.column] is not ValueType.STRING:
            out.append(
                f"{self._where(view)}: column '{self.column}' is {columns[self.column].value}; "
                "MatchesRegex checks string columns"
            )
        return out

    def _arguments(self) -> dict[str, Any]:
        return {"column": self.column, "pattern": self.pattern}


@dataclass(frozen=True)
class UniqueKeys(Expectation):
    """No two rows share the entity keys and the event time. Every row of a duplicated
    (keys, event time) is a failing row: which of them is right cannot be told."""

    kind: ClassVar[str] = "unique_keys"
    row_level: ClassVar[bool] = True

    def columns(self, keys: Sequence[str], timestamp_field: str) -> tuple[str, ...]:
        return (*keys, timestamp_field)

    def describe(self) -> str:
        return "(entity keys, event time) unique"


@dataclass(frozen=True)
class RowCount(Expectation):
    """The run computes between ``min`` and ``max`` rows (inclusive; a missing bound is open)."""

    min: int | None = field(default=None, kw_only=True)
    max: int | None = field(default=None, kw_only=True)

    kind: ClassVar[str] = "row_count"

    def __post_init__(self) -> None:
        for name, value in (("min", self.min), ("max", self.max)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise DefinitionError([f"RowCount {name} must be an integer or None, got {value!r}"])
        super().__post_init__()

    def describe(self) -> str:
        lo = "0" if self.min is None else f"{self.min:,}"
        hi = "+inf" if self.max is None else f"{self.max:,}"
        return f"row count in [{lo}, {hi}]"

    def problems(self, view: str, columns: Mapping[str, ValueType]) -> list[str]:
        out = []
        if self.min is None and self.max is None:
            out.append(f"{self._where(view)} has no bound: give min=, max= or both")
        if any(v is not None and v < 0 for v in (self.min, self.max)):
            out.append(f"{self._where(view)}: bounds must not be negative")
        if self.min is not None and self.max is not None and self.min > self.max:
            out.append(f"{self._where(view)}: min {self.min} is greater than max {self.max}")
        return out

    def _arguments(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max}


@dataclass(frozen=True)
class Fresh(Expectation):
    """The newest event time of the run is at most ``max_age`` old. Old as of the run's window
    end when it has one and it is in the past (a backfill of March is judged at March's end),
    else as of the time of the run. A run that computes no rows fails it."""

    max_age: timedelta

    kind: ClassVar[str] = "fresh"

    def __post_init__(self) -> None:
        if not isinstance(self.max_age, timedelta):
            raise DefinitionError([f"Fresh max_age must be a datetime.timedelta, got {self.max_age!r}"])
        super().__post_init__()

    def columns(self, keys: Sequence[str], timestamp_field: str) -> tuple[str, ...]:
        return (timestamp_field,)

    def describe(self) -> str:
        return f"newest event time at most {self.max_age} old"

    def problems(self, view: str, columns: Mapping[str, ValueType]) -> list[str]:
        if self.max_age <= timedelta(0):
            return [f"{self._where(view)}: max_age must be positive, e.g. Fresh(timedelta(days=1))"]
        return []

    def _arguments(self) -> dict[str, Any]:
        return {"max_age_seconds": self.max_age.total_seconds()}


@dataclass(frozen=True)
class GxExpectation(Expectation):
    """Any Great Expectations 1.x expectation, by its name (``expect_column_values_to_be_between``
    or the class name ``ExpectColumnValuesToBeBetween``) and its arguments::

        GxExpectation("expect_column_mean_to_be_between", {"column": "spend_30d", "min_value": 0, "max_value": 5000})

    The arguments are JSON values (they are stored in the registry). ``apply`` checks the name
    and the arguments (missing, unknown, of the wrong type or out of bounds) against the
    installed Great Expectations; its checks of the arguments together (``min_value`` and
    ``max_value`` both missing, say) run when a run builds the expectation."""

    type: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "gx"

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise DefinitionError([f"GxExpectation needs an expectation name, got {self.type!r}"])
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise DefinitionError(
                [f"GxExpectation('{self.type}') arguments must be a mapping of names to values, got {self.kwargs!r}"]
            )
        try:
            # A private copy of plain JSON values: frozen in practice, and storable in the registry.
            copied = json.loads(json.dumps(dict(self.kwargs), allow_nan=False))
        except (TypeError, ValueError) as err:
            raise DefinitionError(
                [f"GxExpectation('{self.type}') arguments must be JSON values (strings, numbers, lists...): {err}"]
            ) from err
        object.__setattr__(self, "kwargs", copied)
        super().__post_init__()

    def __hash__(self) -> int:
        return hash((self.type, self.severity, json.dumps(self.kwargs, sort_keys=True)))

    def columns(self, keys: Sequence[str], timestamp_field: str) -> tuple[str, ...]:
        out: list[str] = []
        for name in COLUMN_ARGUMENTS:
            value = self.kwargs.get(name)
            if isinstance(value, str):
                out.append(value)
        for name in COLUMN_LIST_ARGUMENTS:
            value = self.kwargs.get(name)
            if isinstance(value, list):
                out.extend(v for v in value if isinstance(v, str))
        return tuple(dict.fromkeys(out))

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.type}({args})"

    def problems(self, view: str, columns: Mapping[str, ValueType]) -> list[str]:
        out: list[str] = []
        for column in self.columns((), ""):
            out.extend(_unknown_column(self, view, column, columns))
        listed = self.kwargs.get("regex_list")
        patterns = [self.kwargs.get("regex"), *(listed if isinstance(listed, list) else [])]
        for pattern in patterns:
            if isinstance(pattern, str):
                try:
                    re.compile(pattern)
                except re.error as err:
                    out.append(f"{self._where(view)}: {pattern!r} is not a valid regular expression: {err}")
        return out

    def _arguments(self) -> dict[str, Any]:
        return {"type": self.type, "kwargs": dict(self.kwargs)}


_KINDS: dict[str, type[Expectation]] = {
    cls.kind: cls for cls in (NotNull, InRange, InSet, MatchesRegex, UniqueKeys, RowCount, Fresh, GxExpectation)
}


def expectation_from_spec(spec: Mapping[str, Any]) -> Expectation:
    """Rebuild an expectation from its registry spec (``Expectation.to_spec()``)."""
    kind = spec.get("kind")
    severity = spec.get("severity", "block")
    if kind == "not_null":
        return NotNull(spec["column"], severity=severity)
    if kind == "in_range":
        return InRange(
            spec["column"],
            min=spec.get("min"),
            max=spec.get("max"),
            strict_min=spec.get("strict_min", False),
            strict_max=spec.get("strict_max", False),
            severity=severity,
        )
    if kind == "in_set":
        return InSet(spec["column"], tuple(spec["values"]), severity=severity)
    if kind == "matches_regex":
        return MatchesRegex(spec["column"], spec["pattern"], severity=severity)
    if kind == "unique_keys":
        return UniqueKeys(severity=severity)
    if kind == "row_count":
        return RowCount(min=spec.get("min"), max=spec.get("max"), severity=severity)
    if kind == "fresh":
        return Fresh(timedelta(seconds=spec["max_age_seconds"]), severity=severity)
    if kind == "gx":
        return GxExpectation(spec["type"], spec.get("kwargs", {}), severity=severity)
    raise DefinitionError([f"Unknown expectation kind {kind!r} in a stored spec; known kinds: {sorted(_KINDS)}"])

"""Partitioned folders: Hive-style partitions discovered, and selected by a date expression.

A :class:`~featurestore.definitions.FileSource` whose ``path`` is a folder reads every file of
its format below it; folders named ``column=value`` (``dt=2026-01-01/part-0.parquet``) are
partitions, and their ``column`` is a column of the rows (DuckDB's and Spark's Hive
partitioning). ``partitions`` on the source selects some of them by a date expression, evaluated
when a run (or a probe, or a preview) reads the source, so only those folders are read::

    FileSource(name="events", path="data/events", partitions="dt >= today - 30")

The expression is one or more conditions joined by ``and``; each compares a partition column
with a date: ``today``, ``today - N`` or ``today + N`` (N days, ``today`` being the UTC date when
the source is read), or a date ``YYYY-MM-DD``. Operators: ``>=``, ``>``, ``<=``, ``<``, ``=``.
A partition value is read as a date from its first ten characters (``2026-01-01`` and
``2026-01-01T00`` both are 1 January).
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from featurestore.errors import RunError

if TYPE_CHECKING:
    from featurestore.definitions import FileSource, Source

_CONDITION = re.compile(
    r"^\s*(?P<column>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|==|=|>|<)\s*"
    r"(?:(?P<today>today)\s*(?:(?P<sign>[+-])\s*(?P<days>\d+))?|'?(?P<date>\d{4}-\d{2}-\d{2})'?)\s*$",
    re.IGNORECASE,
)
_OPERATORS: Mapping[str, Callable[[date, date], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
    "==": operator.eq,
}
EXAMPLE = "dt >= today - 30"


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    days: int | None
    """Days after ``today`` (negative: before); None when the condition names a fixed date."""
    fixed: date | None

    def bound(self, today: date) -> date:
        if self.fixed is not None:
            return self.fixed
        return today + timedelta(days=self.days or 0)


@dataclass(frozen=True)
class PartitionFilter:
    """A parsed ``partitions`` expression (see the module's documentation)."""

    text: str
    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, text: str) -> PartitionFilter:
        """The expression, or ValueError saying which part is not understood and the form to use."""
        parts = re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE)
        conditions = []
        for part in parts:
            match = _CONDITION.match(part)
            if match is None:
                raise ValueError(
                    f"partition expression '{text}': cannot read '{part.strip()}'; write conditions such as "
                    f"'{EXAMPLE}' or \"dt < '2026-01-01'\" joined by 'and'"
                )
            if match["today"]:
                days = int(match["days"] or 0) * (-1 if match["sign"] == "-" else 1)
                conditions.append(Condition(match["column"], match["op"], days, None))
            else:
                try:
                    fixed = date.fromisoformat(match["date"])
                except ValueError as err:
                    raise ValueError(f"partition expression '{text}': {match['date']} is not a date") from err
                conditions.append(Condition(match["column"], match["op"], None, fixed))
        return cls(text=text, conditions=tuple(conditions))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.column for c in self.conditions))

    def matches(self, values: Mapping[str, str], today: date) -> bool:
        """Whether a partition with these ``column -> value`` holds rows the expression selects.
        A partition lacking a column of the expression, or whose value is not a date, is not."""
        for c in self.conditions:
            value = partition_date(values.get(c.column))
            if value is None or not _OPERATORS[c.op](value, c.bound(today)):
                return False
        return True

    def date_range(self, today: date) -> tuple[date | None, date | None]:
        """``(first, after)``: the partition dates the expression selects are ``first <= d < after``
        (None: unbounded on that side). Conditions on different columns narrow the same range:
        partition columns are read as the date of the rows they hold."""
        first: date | None = None
        after: date | None = None
        for c in self.conditions:
            bound = c.bound(today)
            day_after = bound + timedelta(days=1)
            low = {">=": bound, ">": day_after, "=": bound, "==": bound}.get(c.op)
            high = {"<": bound, "<=": day_after, "=": day_after, "==": day_after}.get(c.op)
            if low is not None and (first is None or low > first):
                first = low
            if high is not None and (after is None or high < after):
                after = high
        return first, after


def partition_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class Partition:
    """One partition folder: its path below the source's folder and its ``column -> value``."""

    path: str
    values: Mapping[str, str]


def partition_values(relative: Path) -> dict[str, str]:
    """``{column: value}`` of the ``column=value`` folders in a file's path below its source's folder."""
    out: dict[str, str] = {}
    for part in relative.parts[:-1]:
        column, sep, value = part.partition("=")
        if sep and column:
            out[column] = value
    return out


def folder_files(folder: Path, file_format: str | None) -> list[Path]:
    """The data files below a source's folder, sorted: every file, whatever its name (Hive
    writes ``000000_0``, and ``.csv.gz`` is compressed CSV), except hidden ones, whose name or
    folder's name starts with ``_`` or ``.`` (``_SUCCESS``, ``.crc`` files, ``_temporary``), as
    Hadoop, Spark and Hive leave them out. ``file_format`` says how they are read, not which."""
    found: list[Path] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        found.extend(Path(top) / n for n in names if not n.startswith((".", "_")))
    return sorted(found)


def discover(folder: Path, files: Sequence[Path]) -> list[Partition]:
    """The partitions (``column=value`` folders) the files lie in, in path order."""
    seen: dict[str, Partition] = {}
    for f in files:
        rel = f.relative_to(folder)
        values = partition_values(rel)
        if values:
            key = str(rel.parent)
            seen.setdefault(key, Partition(path=key, values=values))
    return [seen[k] for k in sorted(seen)]


@dataclass(frozen=True)
class SourceFiles:
    """What a file source reads: ``pattern`` (a file or glob, as written) when its path is not a
    folder, else the folder and the ``files`` it reads below it (those of the selected partitions
    when the source has a ``partitions`` expression)."""

    pattern: Path | None
    folder: Path | None
    files: tuple[Path, ...]
    selected_from: int = 0
    """How many files the folder holds in all (before the partition expression)."""
    listed: tuple[Path, ...] = ()
    """Every file the folder holds (before the partition expression), listed once."""


def source_files(
    path: Path, file_format: str | None, partitions: str | None, *, today: date | None = None
) -> SourceFiles:
    """The files a file source reads now (``path`` resolved against the project). Raises
    ValueError for an expression that cannot be read."""
    if not path.is_dir():
        if partitions:
            raise ValueError(
                f"'{path}' is not a folder: a partition expression ('{partitions}') selects partition "
                "folders of a source whose path is a folder"
            )
        return SourceFiles(pattern=path, folder=None, files=())
    files = folder_files(path, file_format)
    if not partitions:
        return SourceFiles(pattern=None, folder=path, files=tuple(files), selected_from=len(files), listed=tuple(files))
    chosen = PartitionFilter.parse(partitions)
    day = today or datetime.now(UTC).date()
    selected = [f for f in files if chosen.matches(partition_values(f.relative_to(path)), day)]
    return SourceFiles(pattern=None, folder=path, files=tuple(selected), selected_from=len(files), listed=tuple(files))


def read_files(source: FileSource, path: Path, *, today: date | None = None) -> list[Path] | None:
    """The files an engine reads for a file source at ``path`` (resolved): None when the path is
    a file or a glob (read as written), else the folder's files of the selected partitions.
    A folder with no such file is a :class:`RunError` naming the source and what to do."""
    try:
        found = source_files(path, source.file_format, source.partitions, today=today)
    except ValueError as err:
        raise RunError(f"Source '{source.name}': {err}") from err
    if found.folder is None:
        return None
    if not found.files:
        if found.selected_from:
            raise RunError(
                f"Source '{source.name}': none of the {found.selected_from} files below '{path}' is in a partition "
                f"that '{source.partitions}' selects today; widen the expression, or check the partitions with "
                f"'featurestore source check {source.name}'"
            )
        raise RunError(
            f"Source '{source.name}': the folder '{path}' holds no data file (names starting with '_' or '.' are "
            "left out as hidden); check the path "
            "in its definition"
        )
    return list(found.files)


@dataclass(frozen=True)
class Selection:
    """The dates a view's partitioned sources select today: ``first <= d < after`` (None:
    unbounded), and the ``(source, expression)`` pairs that set them."""

    first: date | None
    after: date | None
    expressions: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        dates = f"{self.first.isoformat() if self.first else 'any date'} to " + (
            (self.after - timedelta(days=1)).isoformat() if self.after else "any date"
        )
        which = ", ".join(f"source '{name}' reads '{text}'" for name, text in self.expressions)
        return f"{which} (dates {dates})"


def selection(source: Source, *, today: date | None = None) -> Selection | None:
    """The dates the partition expressions of ``source`` and the sources below it (a SQL
    source's) select today, narrowed together; None when none of them has an expression. A run
    must not replace published dates outside them: it did not read their rows."""
    day = today or datetime.now(UTC).date()
    first: date | None = None
    after: date | None = None
    found: list[tuple[str, str]] = []
    pending: list[Source] = [source]
    while pending:
        current = pending.pop()
        pending.extend(getattr(current, "sources", ()))
        text = getattr(current, "partitions", None)
        if not text:
            continue
        found.append((current.name, text))
        low, high = PartitionFilter.parse(text).date_range(day)
        if low is not None and (first is None or low > first):
            first = low
        if high is not None and (after is None or high < after):
            after = high
    if not found:
        return None
    return Selection(first, after, tuple(sorted(found)))

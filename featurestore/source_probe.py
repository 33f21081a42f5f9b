"""Source probes: is a source reachable and readable, what does it hold (issue 18, part 2).

A probe of a source answers, cheaply and within a time bound: do its files exist, can this
process read them, what are its columns, how many rows does it have and which event times do
they span, which partitions does a partitioned folder hold, and a few sample rows. Parquet
gives the row count from the footers of the files the source reads (up to
:data:`MAX_FILES_READ` files; the partitions it does not select are listed with their files,
not their rows); the event time's range is a ``min``/``max`` query over the rows (as is the
count beyond those files or for CSV), and the sample a ``LIMIT`` read, both with DuckDB. A SQL
source is probed by running its query over its (probed) inputs. Every step runs within the
probe's time bound (checked between steps, a DuckDB query past it interrupted): what is not
answered within it is left out with a note.

**Sensitive columns.** A source tagged ``sensitive:COLUMN`` (any number of such tags) never has
that column's values sampled, nor any SQL source built on it; the column's name and type are
still shown. Probes are recorded in the registry (the latest per source) by
:meth:`featurestore.registry.Registry.record_source_probe`, on ``featurestore apply`` and by
``featurestore source check``.
"""

from __future__ import annotations

import glob
import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from featurestore.definitions import FileSource, Source, SqlSource
from featurestore.partitions import discover, source_files

# DuckDB (~75 ms of CPU to import) and featurestore.sql (which imports it) are imported by the
# functions that probe: the registry and the catalog read recorded probes (SourceProbe) without it.
if TYPE_CHECKING:
    import duckdb

Status = Literal["ok", "missing", "unreadable", "failed"]

SENSITIVE_TAG = "sensitive:"
"""A source tag ``sensitive:COLUMN`` keeps COLUMN's values out of samples."""

MAX_FILES_READ = 2000
"""Files whose footers a probe reads at most (beyond: counted by DuckDB within the time bound)."""


def sensitive_columns(source: Source) -> tuple[str, ...]:
    """The columns of ``source`` whose values are never sampled: its ``sensitive:COLUMN`` tags
    and, for a SQL source, those of the sources it reads (a column keeps its name through a query
    more often than not; renaming it there needs its own tag)."""
    names = [t[len(SENSITIVE_TAG) :].strip() for t in source.tags if t.startswith(SENSITIVE_TAG)]
    if isinstance(source, SqlSource):
        for up in source.sources:
            names.extend(sensitive_columns(up))
    return tuple(dict.fromkeys(n for n in names if n))


def sensitive_among(columns: Iterable[str], sensitive: Iterable[str]) -> tuple[str, ...]:
    """The ``columns`` (as the source spells them) that a ``sensitive:`` tag names, compared
    without case: DuckDB and Spark resolve column names case-insensitively, so a tag
    ``sensitive:email`` must hide a column ``Email`` too."""
    tagged = {s.casefold() for s in sensitive}
    return tuple(c for c in columns if c.casefold() in tagged)


@dataclass(frozen=True)
class PartitionInfo:
    path: str
    values: Mapping[str, str]
    files: int
    rows: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "values": dict(self.values), "files": self.files, "rows": self.rows}


@dataclass(frozen=True)
class SourceProbe:
    """What a probe of one source found. ``status``: ``ok``, ``missing`` (no file), ``unreadable``
    (files this process cannot read, or that are not of the source's format) or ``failed``
    (the query, or an input, fails); ``message`` says what is wrong and what to do. Counts not
    measured (a time bound hit, no statistics) are None, and ``notes`` say why."""

    source: str
    kind: str
    status: Status
    message: str
    probed_at: datetime
    seconds: float
    columns: tuple[tuple[str, str], ...] = ()
    row_count: int | None = None
    time_min: datetime | None = None
    time_max: datetime | None = None
    sample: tuple[Mapping[str, Any], ...] = ()
    sensitive: tuple[str, ...] = ()
    files: int | None = None
    partitions: tuple[PartitionInfo, ...] = ()
    selected_partitions: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "probed_at": self.probed_at.isoformat(),
            "seconds": round(self.seconds, 4),
            "columns": [{"name": n, "type": t} for n, t in self.columns],
            "row_count": self.row_count,
            "time_min": None if self.time_min is None else self.time_min.isoformat(),
            "time_max": None if self.time_max is None else self.time_max.isoformat(),
            "sample": [dict(r) for r in self.sample],
            "sensitive": list(self.sensitive),
            "files": self.files,
            "partitions": [p.to_dict() for p in self.partitions],
            "selected_partitions": self.selected_partitions,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceProbe:
        def when(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        probed = when(data["probed_at"])
        assert probed is not None  # written by to_dict
        return cls(
            source=data["source"],
            kind=data["kind"],
            status=data["status"],
            message=data["message"],
            probed_at=probed,
            seconds=float(data["seconds"]),
            columns=tuple((c["name"], c["type"]) for c in data.get("columns", ())),
            row_count=data.get("row_count"),
            time_min=when(data.get("time_min")),
            time_max=when(data.get("time_max")),
            sample=tuple(data.get("sample", ())),
            sensitive=tuple(data.get("sensitive", ())),
            files=data.get("files"),
            partitions=tuple(
                PartitionInfo(path=p["path"], values=p["values"], files=p["files"], rows=p.get("rows"))
                for p in data.get("partitions", ())
            ),
            selected_partitions=data.get("selected_partitions"),
            notes=tuple(data.get("notes", ())),
        )

    def render(self) -> str:
        """The probe as text, for the CLI."""
        lines = [f"source {self.source} ({self.kind}): {self.status}" + (f": {self.message}" if self.message else "")]
        if self.ok:
            rows = "not counted" if self.row_count is None else f"{self.row_count:,}"
            lines.append(f"  rows: {rows}" + (f" in {self.files:,} file(s)" if self.files is not None else ""))
            if self.time_min is not None or self.time_max is not None:
                lines.append(f"  event time: {_when(self.time_min)} to {_when(self.time_max)}")
            if self.partitions:
                shown = ", ".join(p.path for p in self.partitions[:5])
                more = f", ... ({len(self.partitions)} in all)" if len(self.partitions) > 5 else ""
                selected = (
                    ""
                    if self.selected_partitions is None
                    else f"; {self.selected_partitions} selected by the expression"
                )
                lines.append(f"  partitions: {shown}{more}{selected}")
            lines.append("  columns: " + ", ".join(f"{n} {t}" for n, t in self.columns))
            if self.sensitive:
                lines.append("  not sampled (sensitive): " + ", ".join(self.sensitive))
            for row in self.sample:
                lines.append("  | " + ", ".join(f"{k}={v}" for k, v in row.items()))
        for note in self.notes:
            lines.append(f"  note: {note}")
        lines.append(f"  probed in {self.seconds:.3f} s")
        return "\n".join(lines)


def _when(value: datetime | None) -> str:
    return "?" if value is None else value.isoformat()


# ---------------------------------------------------------------------------- probing


class _Deadline:
    """A probe's time bound: DuckDB queries past it are interrupted."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def query(self, con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]] | None:
        """The rows of ``sql``, or None when the bound passes first."""
        import duckdb

        left = self.left()
        if left <= 0:
            return None
        timer = threading.Timer(left, con.interrupt)
        timer.start()
        try:
            return con.execute(sql).fetchall()
        except duckdb.InterruptException:
            return None
        finally:
            timer.cancel()


def probe_source(
    source: Source,
    root: Path,
    *,
    sample_rows: int = 5,
    timeout: float = 10.0,
    now: datetime | None = None,
) -> SourceProbe:
    """Probe one source (see the module's documentation). Never raises for what the source holds:
    the answer says what is wrong. ``root`` resolves relative paths."""
    from featurestore.sql import cursor

    started = time.perf_counter()
    deadline = _Deadline(timeout)
    probed_at = now or datetime.now(UTC)
    kind = "file" if isinstance(source, FileSource) else "sql"
    con = cursor()  # the process's database: a new one costs 30-90 ms; temp views stay this cursor's
    try:
        found = _probe(con, source, root, sample_rows, deadline, probed_at.date())
    except _Problem as problem:
        found = {"status": problem.status, "message": problem.message}
    finally:
        con.close()
    return SourceProbe(
        source=source.name, kind=kind, probed_at=probed_at, seconds=time.perf_counter() - started, **found
    )


def probe_sources(
    sources: Sequence[Source], root: Path, *, sample_rows: int = 5, timeout: float = 10.0, workers: int = 4
) -> list[SourceProbe]:
    """Probe several sources in parallel (DuckDB and file reads release the GIL), in their order."""
    if len(sources) <= 1:
        return [probe_source(s, root, sample_rows=sample_rows, timeout=timeout) for s in sources]
    with ThreadPoolExecutor(max_workers=min(workers, len(sources))) as pool:
        return list(pool.map(lambda s: probe_source(s, root, sample_rows=sample_rows, timeout=timeout), sources))


class _Problem(Exception):
    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _probe(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    root: Path,
    sample_rows: int,
    deadline: _Deadline,
    today: date,
) -> dict[str, Any]:
    from featurestore.sql import quote

    notes: list[str] = []
    facts: dict[str, Any] = {}
    _register(con, source, root, deadline, today, facts, notes, top=True)
    name = quote(source.name)
    described = deadline.query(con, f"DESCRIBE SELECT * FROM {name}")
    if described is None:
        notes.append(f"columns not read within the probe's {deadline.seconds:g} s (quality.probe_timeout_seconds)")
    columns = tuple((str(r[0]), str(r[1])) for r in described or ())
    sensitive = sensitive_among((n for n, _ in columns), sensitive_columns(source))
    ts = source.timestamp_field
    if ts and described is not None and ts not in {n for n, _ in columns}:
        notes.append(f"the timestamp field '{ts}' is not a column: fix timestamp_field in the definition")
        ts = None
    rows = facts.get("row_count")
    low, high = facts.get("time_min"), facts.get("time_max")
    if rows is None or (ts and (low is None or high is None)):
        aggregates = ["count(*)"] + ([f"min({quote(ts)})", f"max({quote(ts)})"] if ts else [])
        answer = deadline.query(con, f"SELECT {', '.join(aggregates)} FROM {name}")
        if answer is None:
            notes.append(f"rows not counted within the probe's {deadline.seconds:g} s (quality.probe_timeout_seconds)")
        else:
            rows = int(answer[0][0])
            if ts:
                low, high = _aware(answer[0][1]), _aware(answer[0][2])
    sample: list[dict[str, Any]] = []
    shown = [n for n, _ in columns if n not in sensitive]
    if sample_rows > 0 and shown:
        select = ", ".join(quote(n) for n in shown)
        got = deadline.query(con, f"SELECT {select} FROM {name} LIMIT {int(sample_rows)}")
        if got is None:
            notes.append(f"no sample read within the probe's {deadline.seconds:g} s")
        else:
            sample = [{n: _json_value(v) for n, v in zip(shown, r, strict=True)} for r in got]
    return {
        "status": "ok",
        "message": "",
        "columns": columns,
        "row_count": rows,
        "time_min": low,
        "time_max": high,
        "sample": tuple(sample),
        "sensitive": sensitive,
        "files": facts.get("files"),
        "partitions": tuple(facts.get("partitions", ())),
        "selected_partitions": facts.get("selected_partitions"),
        "notes": tuple(notes),
    }


def _register(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    root: Path,
    deadline: _Deadline,
    today: date,
    facts: dict[str, Any],
    notes: list[str],
    *,
    top: bool,
) -> None:
    """Create a view named as the source, reading what the engines read; the probed (top) file
    source's footers fill ``facts`` (files, rows, time range, partitions)."""
    import duckdb

    from featurestore.sql import literal, quote

    if isinstance(source, SqlSource):
        for up in source.sources:
            try:
                _register(con, up, root, deadline, today, {}, [], top=False)
            except _Problem as problem:
                raise _Problem(
                    problem.status, f"its input '{up.name}' is {problem.status}: {problem.message}"
                ) from problem
        try:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(source.name)} AS {source.query}")
            deadline.query(con, f"DESCRIBE SELECT * FROM {quote(source.name)}")
        except duckdb.Error as err:
            raise _Problem(
                "failed", f"its query fails in DuckDB: {str(err).splitlines()[0]}; fix the query in its definition"
            ) from err
        return
    path = Path(source.path)
    path = path if path.is_absolute() else root / path
    try:
        found = source_files(path, source.file_format, source.partitions, today=today)
    except ValueError as err:
        raise _Problem("failed", f"{err}; fix the source's definition") from err
    except PermissionError as err:
        raise _Problem("unreadable", _permission_message(path, err)) from err
    if found.folder is not None:
        files = list(found.files)
        if not found.selected_from:
            raise _Problem(
                "missing",
                f"the folder '{path}' holds no data file (names starting with '_' or '.' are left out as hidden): "
                "check the path, or write the data",
            )
        if top:
            facts["listed"] = (found.folder, found.listed)
            if source.partitions:
                facts["selected_partitions"] = len({f.parent for f in files})
        if not files:
            raise _Problem(
                "missing",
                f"no partition below '{path}' matches '{source.partitions}' today ({today}): widen the expression",
            )
    else:
        files = sorted(Path(f) for f in glob.iglob(str(path), recursive=True) if Path(f).is_file())
        if not files:
            where = path.parent if path.parent.exists() else None
            hint = f" (the folder '{where}' exists)" if where is not None else ""
            raise _Problem(
                "missing",
                f"no file matches '{path}'{hint}: check the path in the source's definition, or write the data there",
            )
    for i, f in enumerate(files[:MAX_FILES_READ]):
        if i % 100 == 0 and deadline.left() <= 0:
            notes.append(f"{i:,} of {len(files):,} files opened within the probe's {deadline.seconds:g} s")
            break
        try:
            with open(f, "rb") as handle:
                handle.read(1)
        except PermissionError as err:
            raise _Problem("unreadable", _permission_message(f, err)) from err
        except OSError as err:
            raise _Problem("unreadable", f"'{f}' cannot be read: {err.strerror or err}") from err
    if source.file_format == "parquet" and top:
        _parquet_facts(con, files, facts, notes, deadline)
    elif top:
        facts["files"] = len(files)
    if top and "listed" in facts:
        folder, listed = facts.pop("listed")
        facts["partitions"] = _partition_infos(folder, listed, facts.get("rows_by_file", {}))
    listed = "[" + ", ".join(literal(f) for f in files) + "]"
    hive = ", hive_partitioning = true" if found.folder is not None else ""
    if source.file_format == "parquet":
        body = f"SELECT * FROM read_parquet({listed}, union_by_name = true{hive})"
    else:
        body = f"SELECT * FROM read_csv_auto({listed}{hive})"
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(source.name)} AS {body}")
        deadline.query(con, f"SELECT * FROM {quote(source.name)} LIMIT 0")  # past the bound: not checked
    except duckdb.Error as err:
        raise _Problem(
            "unreadable",
            f"its files are not readable as {source.file_format}: {str(err).splitlines()[0]}; "
            "check file_format and the files",
        ) from err


def _permission_message(path: Path, err: PermissionError) -> str:
    user = _user()
    return (
        f"'{path}' cannot be read by {user} ({err.strerror or 'permission denied'}): grant that user read access, "
        "or run the feature store as a user who has it"
    )


def _user() -> str:
    try:
        import pwd

        return f"user '{pwd.getpwuid(os.geteuid()).pw_name}'"
    except (ImportError, KeyError):
        return "this process's user"


def _file_rows(con: duckdb.DuckDBPyConnection, files: Sequence[Path], deadline: _Deadline) -> dict[Path, int] | None:
    """Rows per Parquet file, from their footers (DuckDB's ``parquet_file_metadata``: no data
    read, and no pyarrow.parquet, whose import costs a second under load); None when the
    probe's time bound passes first."""
    import duckdb

    from featurestore.sql import literal

    if not files:
        return {}
    listed = "[" + ", ".join(literal(f) for f in files) + "]"
    try:
        found = deadline.query(con, f"SELECT file_name, num_rows FROM parquet_file_metadata({listed})")
    except duckdb.Error as err:
        raise _Problem(
            "unreadable",
            f"a file is not readable as Parquet ({str(err).splitlines()[0]}): check file_format and the files",
        ) from err
    if found is None:
        return None
    return {Path(name): int(rows) for name, rows in found}


def _parquet_facts(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    facts: dict[str, Any],
    notes: list[str],
    deadline: _Deadline,
) -> None:
    """Row count from the footers of the files the source reads (the event-time range is a
    bounded query)."""
    facts["files"] = len(files)
    if len(files) > MAX_FILES_READ:
        notes.append(f"{len(files):,} files: counted by a query rather than from each footer")
        return
    by_file = _file_rows(con, files, deadline)
    if by_file is None:
        notes.append(f"the files' footers were not read within the probe's {deadline.seconds:g} s")
        return
    facts["row_count"] = sum(by_file.values())
    facts["rows_by_file"] = by_file


def _partition_infos(folder: Path, files: Sequence[Path], by_file: Mapping[Path, int]) -> list[PartitionInfo]:
    """The folder's partitions, each with its files and (for the files whose footers were read:
    those the source reads) its rows; the files grouped by their folder in one pass."""
    inside: dict[Path, list[Path]] = {}
    for f in files:
        inside.setdefault(f.parent, []).append(f)
    out = []
    for part in discover(folder, files):
        mine = inside.get(folder / part.path, [])
        rows = sum(by_file[f] for f in mine) if mine and all(f in by_file for f in mine) else None
        out.append(PartitionInfo(path=part.path, values=part.values, files=len(mine), rows=rows))
    return out


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _json_value(value: Any) -> Any:
    """A sampled value as JSON holds it (times as ISO text, decimals and NaN as text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)

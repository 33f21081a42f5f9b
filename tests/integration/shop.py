"""A small real project for the consistency torture suites, and what it must hold after each run.

``shop`` has one entity (``user_id``), one source of card events written as one Parquet file per
day (``data/raw/events/day-DD.parquet``, so a test corrects or empties a day by rewriting its
file) and two views:

* ``daily_spend``: each user's spend of a day, published at the next midnight (``as_of``), with
  values of every type (float, int, bool, timestamp). TTL two days, so as of the watermark most
  rows are past their TTL: online still holds them (TTL is applied when reading).
* ``recent_spend``: a day's spend published three days later, computed with a source lookback of
  one day: a windowed run reads the source from a day before its window, so a re-run of a late
  window no longer sees the days that fed its first rows, and those rows leave the window.

:class:`Shop` keeps a model of the source (events per day) and of what each view must hold offline
after the runs so far (:meth:`Shop.expected`), computed in plain Python from the events and the
windows run, with no feature store code. After each run a test checks the view four ways
(:meth:`Shop.assert_consistent`): offline equals the model; the checker finds online equal to
offline; the independent comparison (``independent.py``) agrees; and no pending intent or
orphaned file is left.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from crashes import REPO, Outcome, RunServer
from independent import Key, RawOnline, Row, compare, manifest, micros, offline_latest, offline_table, watermark

from featurestore.config import CONFIG_FILE_NAME
from featurestore.definitions import FeatureView
from featurestore.project_files import load_definitions
from featurestore.store import FeatureStore
from featurestore.validation import validate_project


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


D = {d: utc(2024, 3, d) for d in range(1, 16)}
"""Midnights of March 2024: ``D[1]`` .. ``D[15]``."""
DAYS = range(1, 10)
"""Days the source has events on: March 1 to 9."""
SPEND, RECENT = "daily_spend", "recent_spend"
TTL = {SPEND: timedelta(days=2), RECENT: timedelta(days=3650)}
N_USERS = 48
CLI = Path(sys.executable).with_name("featurestore")
SPARK_TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
}
"""The Spark settings of the tests' sessions: no UI, small shuffles (as ``tests/spark``)."""

DEFINITIONS = '''
from datetime import timedelta

from featurestore import Bool, Entity, Feature, FeatureView, FileSource, Float64, Int64, Timestamp

user = Entity(name="user", join_keys=("user_id",), key_types=(Int64,))
events = FileSource(name="events", path="data/raw/events/*.parquet", timestamp_field="ts")

daily_spend = FeatureView(
    name="daily_spend",
    entities=(user,),
    source=events,
    timestamp_field="as_of",
    ttl=timedelta(days=2),
    transformation="""
        SELECT user_id, CAST(date_trunc('day', ts) + INTERVAL 1 DAY AS TIMESTAMP) AS as_of,
               sum(amount) AS spend, count(*) AS n, max(amount) > 100 AS big, min(ts) AS first_at
               EXTRA_SQL
        FROM events GROUP BY ALL
    """,
    features=(
        Feature("spend", Float64),
        Feature("n", Int64),
        Feature("big", Bool),
        Feature("first_at", Timestamp),
        EXTRA_FEATURE
    ),
)

recent_spend = FeatureView(
    name="recent_spend",
    entities=(user,),
    source=events,
    timestamp_field="as_of",
    ttl=timedelta(days=3650),
    source_lookback=timedelta(days=1),
    transformation="""
        SELECT user_id, CAST(date_trunc('day', ts) + INTERVAL 3 DAY AS TIMESTAMP) AS as_of, sum(amount) AS spend
        FROM events GROUP BY ALL
    """,
    features=(Feature("spend", Float64),),
)
'''
FEATURES = {SPEND: ["spend", "n", "big", "first_at"], RECENT: ["spend"]}
MAX_AMOUNT = "max_amount"
"""The feature ``with_max_amount`` adds to ``daily_spend``."""

EVENT_SCHEMA = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("amount", pa.float64())])


@dataclass(frozen=True)
class Event:
    user: int
    ts: datetime
    amount: float


def random_events(rng: random.Random, users: Sequence[int], day: int) -> list[Event]:
    """A day's events of some of ``users``: one to three each, amounts in halves (sums are exact)."""
    out = []
    for user in users:
        if rng.random() < 0.45:
            for _ in range(rng.randrange(1, 4)):
                ts = D[day] + timedelta(seconds=rng.randrange(86_400))
                out.append(Event(user, ts, rng.randrange(1, 500) / 2))
    return out


QUIET_AFTER_D1 = 901
"""Events on D1 and D4 only: ``recent_spend`` rows at D4 and D7."""
ONLY_D3 = 902
"""Events on D3 only: one ``recent_spend`` row, at D6."""
STEADY = 903
"""Events on D4 and D7: ``recent_spend`` rows at D7 and D10."""
CORRECTED = 904
"""Events on D2, D5 and D8: ``daily_spend`` rows at D3, D6 and D9."""
ONLY_D8 = 905
"""Events on D8 only: one ``daily_spend`` row, at D9."""


def base_source(seed: int = 7) -> dict[int, list[Event]]:
    rng = random.Random(seed)
    source = {day: random_events(rng, range(1, N_USERS + 1), day) for day in DAYS}
    special = [
        Event(QUIET_AFTER_D1, D[1] + timedelta(hours=9), 10.0),
        Event(QUIET_AFTER_D1, D[4] + timedelta(hours=9), 20.0),
        Event(ONLY_D3, D[3] + timedelta(hours=10), 30.0),
        Event(STEADY, D[4] + timedelta(hours=11), 40.0),
        Event(STEADY, D[7] + timedelta(hours=11), 50.0),
        Event(CORRECTED, D[2] + timedelta(hours=8), 60.0),
        Event(CORRECTED, D[5] + timedelta(hours=8), 70.0),
        Event(CORRECTED, D[8] + timedelta(hours=8), 180.0),
        Event(CORRECTED, D[8] + timedelta(hours=9), 0.5),
        Event(ONLY_D8, D[8] + timedelta(hours=12), 90.0),
    ]
    for e in special:
        source[(e.ts - D[1]).days + 1].append(e)
    return source


# ---------------------------------------------------------------------------- the model


def view_rows(view: str, events: Sequence[Event], *, extra: bool = False) -> dict[Key, dict[str, Any]]:
    """What the view's transformation gives for these events: (user, as_of µs) -> values."""
    groups: dict[tuple[int, datetime], list[Event]] = defaultdict(list)
    for e in events:
        groups[(e.user, e.ts.replace(hour=0, minute=0, second=0, microsecond=0))].append(e)
    out: dict[Key, dict[str, Any]] = {}
    for (user, midnight), group in groups.items():
        amounts = [e.amount for e in group]
        if view == SPEND:
            values: dict[str, Any] = {
                "spend": sum(amounts),
                "n": len(amounts),
                "big": max(amounts) > 100,
                "first_at": micros(min(e.ts for e in group)),
            }
            if extra:
                values[MAX_AMOUNT] = max(amounts)
            out[(user, micros(midnight + timedelta(days=1)))] = values
        else:
            out[(user, micros(midnight + timedelta(days=3)))] = {"spend": sum(amounts)}
    return out


Window = tuple[datetime | None, datetime | None]


@dataclass
class Shop:
    """The project, its stores, the engine runs go through, and the model of what it must hold."""

    root: Path
    store: FeatureStore
    engine: Any
    engine_name: str
    online_config: dict[str, Any]
    raw: RawOnline
    source: dict[int, list[Event]]
    definitions: dict[str, FeatureView] = field(default_factory=dict)
    commands: RunServer | None = None
    """Where :meth:`cli` runs commands: the fork server's children (no interpreter start each)."""
    model: dict[str, dict[Key, dict[str, Any]]] = field(default_factory=lambda: {SPEND: {}, RECENT: {}})
    pushed: dict[str, set[Key]] = field(default_factory=lambda: {SPEND: set(), RECENT: set()})
    """Rows of the model that were pushed and no run has recomputed since (a run keeps them)."""
    extra_feature: bool = False

    # ------------------------------------------------------------------ building

    @classmethod
    def create(
        cls,
        root: Path,
        online_config: dict[str, Any],
        raw_client: Any,
        *,
        offline: dict[str, Any] | None = None,
        engine: dict[str, Any] | None = None,
        spark: Any = None,
    ) -> Shop:
        (root / "data" / "raw" / "events").mkdir(parents=True)
        config = {
            "project": "shop",
            "definitions": ["features.py"],
            "offline_store": offline or {"type": "parquet", "path": "data/offline"},
            "online_store": online_config,
            **({"engine": engine} if engine else {}),
        }
        (root / CONFIG_FILE_NAME).write_text(json.dumps(config, indent=1))  # JSON is YAML
        (root / "features.py").write_text(_definitions(extra=False))
        source = base_source()
        for day in DAYS:
            _write_day(root, day, source[day])
        store = FeatureStore(root)
        if spark is not None:
            from etl.spark import SparkEngine

            run_engine: Any = SparkEngine(store, spark=spark)
            name = "spark"
        else:
            from etl.local import LocalEngine

            run_engine = LocalEngine(store)
            name = "local"
        shop = cls(root, store, run_engine, name, online_config, RawOnline(online_config, "shop", raw_client), source)
        shop.apply()
        return shop

    def apply(self) -> None:
        """Apply the definitions file as it is now (a new version of a view that changed)."""
        from etl.local import LocalEngine  # the schema of a transformation, on a few rows

        objects = load_definitions(self.store.config)
        self.store.apply(objects, schema_resolver=LocalEngine(self.store).infer_schema)
        self.definitions = {v.name: v for v in validate_project(objects).feature_views}

    def add_max_amount(self) -> None:
        """Add the feature ``max_amount`` to ``daily_spend`` in the definitions file, and apply."""
        (self.root / "features.py").write_text(_definitions(extra=True))
        self.extra_feature = True
        self.apply()
        for values in self.model[SPEND].values():  # published rows read the new feature as null
            values.setdefault(MAX_AMOUNT, None)

    def features(self, view: str) -> list[str]:
        return [*FEATURES[view], MAX_AMOUNT] if view == SPEND and self.extra_feature else FEATURES[view]

    def close(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ the source

    def set_day(self, day: int, events: list[Event]) -> None:
        self.source[day] = events
        _write_day(self.root, day, events)

    def events(self) -> list[Event]:
        return [e for day in sorted(self.source) for e in self.source[day]]

    def mutate(self, rng: random.Random) -> int:
        """A correction of one random day: some users' events dropped, some changed, some added."""
        day = rng.choice(list(DAYS))
        kept, changed = [], set()
        for user in sorted({e.user for e in self.source[day]}):
            mine = [e for e in self.source[day] if e.user == user]
            draw = rng.random()
            if draw < 0.15:
                continue
            if draw < 0.5:
                changed.add(user)
                mine = [Event(e.user, e.ts, rng.randrange(1, 500) / 2) for e in mine]
            kept.extend(mine)
        quiet = [u for u in range(1, N_USERS + 8) if u not in {e.user for e in self.source[day]}]
        for user in rng.sample(quiet, 3):
            kept.append(Event(user, D[day] + timedelta(seconds=rng.randrange(86_400)), rng.randrange(1, 500) / 2))
        self.set_day(day, kept)
        return day

    # ------------------------------------------------------------------ runs

    def run(self, view: str, start: datetime | None = None, end: datetime | None = None, **options: Any) -> Any:
        result = self.engine.run(view, start=start, end=end, definitions=self.definitions, progress=False, **options)
        self.published(view, start, end, merge=bool(options.get("merge")))
        return result

    def request(self, view: str, start: datetime | None, end: datetime | None, **extra: Any) -> dict[str, Any]:
        """A request for ``_killable_run.py`` (see there)."""
        return {
            "root": str(self.root),
            "view": view,
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "engine": self.engine_name,
            "batch_rows": 8,
            **extra,
        }

    def crash(
        self,
        server: RunServer,
        view: str,
        start: datetime | None,
        end: datetime | None,
        *,
        kill: dict[str, Any] | None = None,
        kill_after: float | None = None,
    ) -> Outcome:
        """A run in a child of the fork server, killed at ``kill`` or ``kill_after`` seconds after it
        started; the model follows if it committed (its manifest swap happened)."""
        before = self.manifest_bytes(view)
        outcome = server.run(self.request(view, start, end, kill=kill), kill_after=kill_after)
        if outcome.failure is not None:
            raise AssertionError(f"the run failed instead of being killed: {outcome.describe()}")
        if self.manifest_bytes(view) != before:
            self.published(view, start, end)
        return outcome

    def published(self, view: str, start: datetime | None, end: datetime | None, *, merge: bool = False) -> None:
        """The model after a run of ``view`` over ``[start, end)`` published: the window's rows
        replaced by what the source gives now (kept where not recomputed, with ``merge``)."""
        lower = None if start is None or view != RECENT else start - timedelta(days=1)
        events = [e for e in self.events() if (lower is None or e.ts >= lower) and (end is None or e.ts < end)]
        extra = view == SPEND and self.extra_feature
        lo = micros(start) if start else None
        hi = micros(end) if end else None

        def inside(key: Key) -> bool:
            return (lo is None or key[1] >= lo) and (hi is None or key[1] < hi)

        fresh = {k: v for k, v in view_rows(view, events, extra=extra).items() if inside(k)}
        pushed = self.pushed[view]
        kept = (
            dict(self.model[view])
            if merge
            else {k: v for k, v in self.model[view].items() if not inside(k) or (k in pushed and k not in fresh)}
        )
        kept.update(fresh)
        self.model[view] = kept
        pushed -= set(fresh)  # the source said otherwise: its rows are computed ones now

    # ------------------------------------------------------------------ pushes

    def push_rows(self, view: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows of ``view`` for :func:`etl.push.push` (``user_id``, the event time ``as_of``, every
        feature), complete with the features the caller left out (null)."""
        return [
            {"user_id": r["user_id"], "as_of": r["as_of"], **{f: r.get(f) for f in self.features(view)}} for r in rows
        ]

    def push(self, view: str, rows: Sequence[dict[str, Any]]) -> Any:
        """Push ``rows`` (see :meth:`push_rows`) through the SDK; the model follows."""
        from etl.push import push

        full = self.push_rows(view, rows)
        result = push(self.store, view, full)
        self.pushed_into_model(view, full)
        return result

    def pushed_into_model(self, view: str, rows: Sequence[dict[str, Any]]) -> None:
        for r in rows:
            key = (r["user_id"], micros(r["as_of"]))
            self.model[view][key] = {
                f: micros(r[f]) if isinstance(r.get(f), datetime) else r.get(f) for f in self.features(view)
            }
            self.pushed[view].add(key)

    def cli(self, *args: str, executable: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``featurestore -C ROOT ARGS...`` in a child process: forked by :attr:`commands`, or with
        ``executable`` (or no fork server) the installed ``featurestore`` script itself."""
        if self.commands is not None and not executable:
            return self.commands.cli("-C", str(self.root), *args, timeout=timeout)
        return subprocess.run(
            [str(CLI), "-C", str(self.root), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            check=False,
        )

    # ------------------------------------------------------------------ what the stores hold

    def view_dir(self, view: str) -> Path:
        return self.root / "data" / "offline" / view

    def manifest_bytes(self, view: str) -> bytes | None:
        path = self.view_dir(view) / "_manifest.json"
        return path.read_bytes() if path.exists() else None

    def offline_tree(self, view: str) -> dict[str, bytes | None]:
        base = self.view_dir(view)
        return {str(p.relative_to(base)): (p.read_bytes() if p.is_file() else None) for p in sorted(base.rglob("*"))}

    def offline_rows(self, view: str) -> dict[Key, dict[str, Any]]:
        """Every published row, read from the manifest's files (pyarrow only)."""
        table = offline_table(self.view_dir(view))
        out: dict[Key, dict[str, Any]] = {}
        for record in [] if table is None else table.to_pylist():
            key = (record["user_id"], micros(record["as_of"]))
            assert key not in out, f"offline holds {key} twice"
            out[key] = {
                f: micros(record[f]) if isinstance(record.get(f), datetime) else record.get(f)
                for f in self.features(view)
            }
        return out

    def offline_latest(self, view: str) -> dict[Key, Row]:
        return offline_latest(self.view_dir(view), ["user_id"], "as_of", self.features(view))

    def online(self, view: str) -> dict[Key, Row]:
        return self.raw.rows(view, ["user_id"])

    def online_row(self, view: str, user: int) -> Row | None:
        return self.online(view).get((user,))

    def model_latest(self, view: str) -> dict[Key, Row]:
        latest: dict[Key, Row] = {}
        for (user, at), values in self.model[view].items():
            if (user,) not in latest or at > latest[(user,)].micros:
                latest[(user,)] = Row(at, values)
        return latest

    def pending(self, view: str) -> list[dict[str, Any]]:
        return list(manifest(self.view_dir(view)).get("pending", []))

    # ------------------------------------------------------------------ checks

    def assert_consistent(self, view: str, context: str = "", *, orphans: bool = False) -> None:
        """Offline equals the model; online equals offline for the checker and for the
        independent comparison, and equals the model's latest row per user; nothing pending,
        and (unless ``orphans``: a repair leaves a killed run's unpublished files to the next
        run) no file the manifest does not name."""
        where = f" ({context})" if context else ""
        assert self.pending(view) == [], f"pending intents left{where}: {self.pending(view)}"
        offline = self.offline_rows(view)
        missing = sorted(set(self.model[view]) - set(offline))
        extra = sorted(set(offline) - set(self.model[view]))
        differ = sorted(k for k in set(offline) & set(self.model[view]) if offline[k] != self.model[view][k])
        assert not (missing or extra or differ), (
            f"offline differs from the model{where}: missing {missing[:5]}, extra {extra[:5]}, "
            f"differ {[(k, offline[k], self.model[view][k]) for k in differ[:5]]}"
        )
        report = self.store.check_consistency(view, sample=None)
        assert (report.mismatched, report.missing, report.extra) == (0, 0, 0), f"{where} {report.to_dict()}"
        assert report.checked == report.offline_entities == len({k[0] for k in offline}), report.to_dict()
        online = self.online(view)
        problems = compare(
            self.offline_latest(view), online, self.features(view), ttl=TTL[view], as_of=watermark(self.view_dir(view))
        )
        assert problems == [], f"online differs from offline{where}: {problems[:10]}"
        # Stricter than the TTL allows: a run derives every entity it touched, expired or not.
        expected = self.model_latest(view)
        assert set(online) == set(expected), f"{where} online {sorted(set(online) ^ set(expected))[:10]}"
        if not orphans:
            self.assert_no_orphans(view)

    def assert_no_orphans(self, view: str) -> None:
        base = self.view_dir(view)
        m = manifest(base)
        named = set(m["partitions"].values()) | set(m.get("superseded", []))
        named |= {rel for rels in m.get("pushed", {}).values() for rel in rels}
        on_disk = {str(p.relative_to(base)) for p in base.glob("date=*/**/*") if p.is_file()}
        assert on_disk == named, f"files the manifest does not name: {sorted(on_disk - named)}"
        assert {str(p.relative_to(base)) for p in base.glob("_intents/*")} == {p["keys"] for p in m["pending"]}
        assert not list(base.glob("_staging/*")), list(base.glob("_staging/*"))
        assert not list(base.glob("*.tmp")), list(base.glob("*.tmp"))

    def assert_cli_consistent(self, *views: str) -> None:
        """``featurestore check-consistency VIEW --all``, as a user runs it: 0 differences."""
        for view in views:
            proc = self.cli("check-consistency", view, "--all", "--json")
            assert proc.returncode == 0, proc.stdout + proc.stderr
            report = json.loads(proc.stdout)
            assert (report["mismatched"], report["missing"], report["extra"]) == (0, 0, 0), report
            assert report["checked"] == report["offline_entities"] > 0, report


def raw_client(request: Any, config: dict[str, Any]) -> Any:
    """The raw client :class:`RawOnline` reads a store with: the session's ``redis.Redis`` or
    Cassandra session (fixtures of ``tests/conftest.py``); None for SQLite (a file)."""
    kind = config["type"]
    if kind == "redis":
        return request.getfixturevalue("redis_client")
    if kind == "cassandra":
        return request.getfixturevalue("cassandra_session")
    return None


def _definitions(*, extra: bool) -> str:
    text = textwrap.dedent(DEFINITIONS)
    if extra:
        return text.replace("EXTRA_SQL", f", max(amount) AS {MAX_AMOUNT}").replace(
            "EXTRA_FEATURE", f'Feature("{MAX_AMOUNT}", Float64),'
        )
    return text.replace("EXTRA_SQL", "").replace("EXTRA_FEATURE", "")


def _write_day(root: Path, day: int, events: list[Event]) -> None:
    path = root / "data" / "raw" / "events" / f"day-{day:02d}.parquet"
    if not events:
        path.unlink(missing_ok=True)
        return
    table = pa.table(
        {
            "user_id": pa.array([e.user for e in events], pa.int64()),
            "ts": pa.array([e.ts for e in events], pa.timestamp("us", tz="UTC")),
            "amount": pa.array([e.amount for e in events], pa.float64()),
        },
        schema=EVENT_SCHEMA,
    )
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)

"""The DAG file of ``featurestore airflow-dag``, read as Python text (no Airflow needed): its tasks,
their commands, the dependencies found from the views' sources, the schedule, and the refusals.
Airflow itself runs it in ``tests/integration/test_airflow.py``."""

from __future__ import annotations

import ast
import shlex
from datetime import timedelta
from pathlib import Path

import pytest

from featurestore.airflow_dag import (
    AirflowDag,
    dag_id_for,
    parse_schedule,
    plan_dag,
    reads_folder,
    render_dag,
    view_dependencies,
)
from featurestore.definitions import Entity, Feature, FeatureView, FileSource, SqlSource
from featurestore.errors import DefinitionError, InvalidRequestError
from featurestore.schedules import Schedule
from tests.unit.test_cli import featurestore
from tests.unit.tiny_projects import new_project

USER = Entity(name="user", join_keys=("user_id",))
EVENTS = FileSource(name="events", path="data/events/*.parquet", timestamp_field="ts")


def view(name: str, source: FileSource | SqlSource = EVENTS, schedule: Schedule | None = "0 * * * *") -> FeatureView:
    return FeatureView(
        name=name,
        entities=(USER,),
        source=source,
        ttl=timedelta(days=1),
        features=(Feature("x", "float64"),),
        schedule=schedule,
    )


def files_of(name: str, path: str) -> FileSource:
    return FileSource(name=name, path=path, timestamp_field="event_timestamp")


def plan(views: list[FeatureView], root: Path, **options: object) -> AirflowDag:
    return plan_dag(
        "shop",
        views,
        project_dir=root,
        output_folder=lambda name: root / "data" / "offline" / name,
        featurestore_bin="/opt/feature store/bin/featurestore",
        **options,  # type: ignore[arg-type]
    )


def parsed(source: str) -> tuple[dict[str, str], list[tuple[str, str]], ast.Module]:
    """The DAG file's tasks (task id: bash command) and edges (upstream, downstream), read from its syntax tree."""
    tree = ast.parse(source)
    tasks: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "BashOperator":
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
            tasks[kwargs["task_id"]] = kwargs["bash_command"]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift):
            left, right = node.left, node.right
            assert isinstance(left, ast.Subscript) and isinstance(right, ast.Subscript)
            edges.append((ast.literal_eval(left.slice), ast.literal_eval(right.slice)))
    return tasks, edges, tree


def test_a_view_reading_another_views_offline_files_runs_after_it(tmp_path: Path) -> None:
    spend = view("daily_spend")
    big = view("big_spender", files_of("spend_files", "data/offline/daily_spend/date=*/*.parquet"))
    # Through a SQL source, and by an absolute path with a glob over folders.
    joined = SqlSource(
        name="joined",
        query="SELECT * FROM events JOIN big_files USING (user_id)",
        sources=(EVENTS, files_of("big_files", str(tmp_path / "data" / "offline" / "big_*" / "**" / "*.parquet"))),
    )
    both = view("both", joined)
    alone = view("alone")
    dag = plan([both, big, alone, spend], tmp_path)

    assert [t.view for t in dag.tasks] == ["alone", "daily_spend", "big_spender", "both"]
    assert dag.edges == [("daily_spend", "big_spender"), ("big_spender", "both")]
    tasks, edges, _ = parsed(render_dag(dag))
    assert list(tasks) == ["alone", "daily_spend", "big_spender", "both"]
    assert edges == [("daily_spend", "big_spender"), ("big_spender", "both")]


def test_dependencies_follow_paths_not_names(tmp_path: Path) -> None:
    offline = tmp_path / "data" / "offline"
    assert reads_folder(offline / "a" / "date=*" / "*.parquet", offline / "a")
    assert reads_folder(offline / "*" / "date=*" / "*.parquet", offline / "a")
    assert reads_folder(offline / "**" / "*.parquet", offline / "a")
    assert not reads_folder(offline / "ab" / "*.parquet", offline / "a")
    assert not reads_folder(offline / "a", offline / "a")  # the folder itself is no file in it
    assert not reads_folder(tmp_path / "data" / "events" / "*.parquet", offline / "a")

    views = [
        view("a"),
        view("a_copy", files_of("raw_copy", "data/raw/a/*.parquet")),  # a name alike, another folder
        view("self", files_of("own", "data/offline/self/date=*/*.parquet")),  # its own output: no edge
        view("up", files_of("up_files", "data/../data/offline/a/date=*/*.parquet")),
    ]
    deps = view_dependencies(views, root=tmp_path, output_folder=lambda name: offline / name)
    assert deps == {"a": (), "a_copy": (), "self": (), "up": ("a",)}


def test_the_rendered_dag_runs_the_cli_over_airflows_data_interval(tmp_path: Path) -> None:
    project = tmp_path / "my shop"
    source = render_dag(plan([view("daily_spend")], project))
    tasks, _, tree = parsed(source)
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("airflow.providers.standard.operators.bash", "BashOperator") in imports
    assert ("airflow.sdk", "DAG") in imports
    assert ("airflow.sdk", "CronDataIntervalTimetable") in imports
    assert "dag_id='featurestore_shop'" in source
    assert "schedule=CronDataIntervalTimetable('0 * * * *', timezone='UTC')" in source
    for setting in ("max_active_runs=1", "'max_active_tis_per_dag': 1", "'retries': 2", "catchup=False"):
        assert setting in source
    assert "'retry_exponential_backoff': 2.0" in source
    assert "'max_retry_delay': timedelta(seconds=1800)" in source
    # Paths with spaces stay one argument each; the window is Jinja, rendered by Airflow.
    assert shlex.split(tasks["daily_spend"]) == [
        "/opt/feature store/bin/featurestore",
        "-C",
        str(project),
        "run",
        "daily_spend",
        "--start",
        "{{",
        "data_interval_start",
        "|",
        "ts",
        "}}",
        "--end",
        "{{",
        "data_interval_end",
        "|",
        "ts",
        "}}",
        "--no-progress",
    ]


def test_schedules_agree_or_one_is_given(tmp_path: Path) -> None:
    hourly = plan([view("a"), view("b", schedule="0  *  * * *")], tmp_path)
    assert hourly.schedule == "0 * * * *"
    interval = plan([view("a", schedule=timedelta(minutes=15))], tmp_path)
    assert "schedule=DeltaDataIntervalTimetable(timedelta(seconds=900))" in render_dag(interval)

    differ = [view("a"), view("b", schedule=timedelta(hours=1)), view("c", schedule=timedelta(hours=1))]
    with pytest.raises(InvalidRequestError) as err:
        plan(differ, tmp_path)
    assert "a: 0 * * * *; b, c: every 1:00:00" in str(err.value)
    assert "--schedule" in str(err.value)
    assert plan(differ, tmp_path, schedule=timedelta(hours=2)).schedule == timedelta(hours=2)

    assert parse_schedule("30 6 * * 1") == "30 6 * * 1"
    assert parse_schedule("1h") == timedelta(hours=1)
    with pytest.raises(InvalidRequestError, match="--schedule has '61 \\* \\* \\* \\*', which is not a cron"):
        parse_schedule("61 * * * *")
    with pytest.raises(InvalidRequestError, match="is not a duration"):
        parse_schedule("hourly")


def test_views_without_a_schedule_only_with_all(tmp_path: Path) -> None:
    source = view("source_view", schedule=None)
    reader = view("reader", files_of("source_files", "data/offline/source_view/date=*/*.parquet"))
    dag = plan([source, reader], tmp_path)
    assert [t.view for t in dag.tasks] == ["reader"]
    assert dag.notes == (
        "reader reads the offline output of source_view, which has no schedule and is not in the DAG "
        "(pass --all to run it first)",
    )
    everything = plan([source, reader], tmp_path, include_all=True)
    assert everything.edges == [("source_view", "reader")]
    assert everything.schedule == "0 * * * *" and everything.notes == ()

    with pytest.raises(InvalidRequestError, match="No feature view of project 'shop' declares a schedule"):
        plan([source], tmp_path)
    with pytest.raises(InvalidRequestError, match="None of the feature views in the DAG declares a schedule"):
        plan([source], tmp_path, include_all=True)
    with pytest.raises(InvalidRequestError, match="run 'featurestore apply' first"):
        plan([], tmp_path)


def test_a_cycle_is_refused_naming_its_views(tmp_path: Path) -> None:
    a = view("a", files_of("b_files", "data/offline/b/date=*/*.parquet"))
    b = view("b", files_of("a_files", "data/offline/a/date=*/*.parquet"))
    with pytest.raises(DefinitionError, match="Feature views a, b read each other's offline output in a cycle"):
        plan([a, b, view("c")], tmp_path)


def test_dag_ids_are_what_airflow_accepts() -> None:
    assert dag_id_for("bank") == "featurestore_bank"
    assert dag_id_for("my bank/eu") == "featurestore_my_bank_eu"


FEATURES_PY = """\
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, FileSource, Float64, Int64

rider = Entity(name="rider", join_keys=("rider_id",), key_types=(Int64,))
trips = FileSource(name="trips", path="data/trips.csv", timestamp_field="ts")
fares = FeatureView(
    name="fares", entities=(rider,), source=trips, timestamp_field="ts", ttl=timedelta(days=1),
    features=(Feature("fare", Float64),), schedule=timedelta(hours=1),
)
tips = FeatureView(
    name="tips", entities=(rider,), source=trips, timestamp_field="ts", ttl=timedelta(days=1),
    features=(Feature("tip", Float64),),
)
"""


def test_cli_writes_the_dag_of_the_applied_views(tmp_path: Path) -> None:
    root = new_project(tmp_path / "rides", "rides")
    (root / "features.py").write_text(FEATURES_PY)
    (root / "data").mkdir()
    (root / "data" / "trips.csv").write_text("rider_id,ts,fare,tip\n1,2024-03-01T10:00:00+00:00,12.5,2.0\n")
    assert featurestore("-C", root, "apply").code == 0

    out = tmp_path / "dags" / "rides.py"
    written = featurestore("-C", root, "airflow-dag", "--output", out)
    assert written.code == 0, written.err
    assert written.out == f"wrote {out}: DAG featurestore_rides, 1 task(s) (fares), dependencies: none\n"
    tasks, _, _ = parsed(out.read_text())
    command = shlex.split(tasks["fares"])
    assert Path(command[0]).is_absolute() and Path(command[0]).name == "featurestore"
    assert command[1:5] == ["-C", str(root.resolve()), "run", "fares"]
    assert "DeltaDataIntervalTimetable(timedelta(seconds=3600))" in out.read_text()

    printed = featurestore(
        "-C", root, "airflow-dag", "--all", "--featurestore-bin", "/srv/fs/bin/featurestore", "--dag-id", "rides_hourly"
    )
    assert printed.code == 0, printed.err
    tasks, _, _ = parsed(printed.out)
    assert sorted(tasks) == ["fares", "tips"]
    assert all(c.startswith("/srv/fs/bin/featurestore -C ") for c in tasks.values())
    assert "dag_id='rides_hourly'" in printed.out

    refused = featurestore("-C", root, "airflow-dag", "--schedule", "every hour")
    assert refused.code == 2
    assert "--schedule has 'every hour', which is not a cron expression" in refused.err

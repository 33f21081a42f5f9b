"""Where people see the quality gate: ``featurestore validate`` (a dry run that publishes and
records nothing), ``featurestore stats``, ``featurestore run --quarantine``, and the datamart's
``/v1/runs/{id}/quality`` and ``/v1/feature-views/{name}/statistics``."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from quality_projects import BAD, VIEW, new_project, run, tree_snapshot, write_rows

from datamart.app import create_app
from featurestore import QualityCheckFailedError
from featurestore.cli import main
from featurestore.store import FeatureStore


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def featurestore(*args: str | Path) -> Outcome:
    """Run ``featurestore ARGS...`` in this process, through the console script's entry point."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["featurestore", *(str(a) for a in args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
    return Outcome(code, out.getvalue(), err.getvalue())


# ---------------------------------------------------------------------- CLI


def test_validate_is_a_dry_run_that_exits_2_on_a_blocking_failure(tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank", rows=BAD)
    before = tree_snapshot(root / "data")
    outcome = featurestore("-C", root, "validate", VIEW, "--end", "2024-03-03")
    assert outcome.code == 2, outcome.err
    assert "Quality gate of feature view 'accounts' on 9 computed rows: BLOCKED" in outcome.out
    assert "FAILED (block)  balance in [0, +inf): 2 of 9 rows fail (22.22%)" in outcome.out
    assert tree_snapshot(root / "data") == before  # nothing published, nothing recorded
    with FeatureStore(root) as store:
        assert store.registry.list_runs(store.project) == []

    window = featurestore("-C", root, "validate", VIEW, "--start", "2024-03-01", "--end", "2024-03-02", "--json")
    assert window.code == 0, window.err
    report = json.loads(window.out)
    assert (report["status"], report["rows"]) == ("passed", 3)  # the failing rows are on 03-02
    assert report["reference_time"] == "2024-03-02T00:00:00+00:00"


def test_validate_names_an_unknown_view_with_a_suggestion(tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank")
    outcome = featurestore("-C", root, "validate", "acounts")
    assert outcome.code == 1
    assert "Feature view 'acounts' not found in project 'quality_tests'. Did you mean 'accounts'?" in outcome.err


def test_run_quarantine_flag_and_stats(tmp_path: Path) -> None:
    root = new_project(tmp_path / "bank", rows=BAD)
    blocked = featurestore("-C", root, "run", VIEW, "--no-progress")
    assert blocked.code == 1
    assert "stopped by its quality gate; nothing was published" in blocked.err

    none_yet = featurestore("-C", root, "stats", VIEW)
    assert none_yet.code == 1
    assert "feature view 'accounts' has no successful run yet: run it first" in none_yet.err

    ran = featurestore("-C", root, "run", VIEW, "--no-progress", "--quarantine")
    assert ran.code == 0, ran.err
    assert "accounts: 6 rows offline" in ran.out
    assert "quality quarantined (3 rows quarantined)" in ran.out

    shown = featurestore("-C", root, "stats", VIEW)
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert ", succeeded, 6 rows published, quality quarantined" in lines[0]
    assert lines[1].split()[:5] == ["feature", "nulls", "distinct", "min", "max"]
    balance = next(line for line in lines if line.startswith("balance"))
    assert balance.split()[:5] == ["balance", "0.0%", "6", "0", "250.5"]

    with FeatureStore(root) as store:
        failed_id = store.registry.list_runs(store.project, VIEW)[1].id
    failed = featurestore("-C", root, "stats", VIEW, "--run", failed_id, "--json")
    assert failed.code == 0, failed.err
    body = json.loads(failed.out)
    assert (body["run"]["status"], body["validation"]["status"], body["statistics"]) == ("failed", "blocked", {})


# ---------------------------------------------------------------------- datamart


@pytest.fixture
def api(tmp_path: Path) -> TestClient:
    root = new_project(tmp_path / "bank")
    store = FeatureStore(root)
    run(store)
    write_rows(root, BAD)
    with pytest.raises(QualityCheckFailedError):
        run(store)
    return TestClient(create_app(store, close_store=True))


def test_the_quality_of_a_run_over_http(api: TestClient) -> None:
    with api:
        store: FeatureStore = api.app.state.store  # type: ignore[attr-defined]
        failed, succeeded = store.registry.list_runs(store.project, VIEW)

        ok = api.get(f"/v1/runs/{succeeded.id}/quality")
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert (body["run"]["id"], body["run"]["status"], body["validation"]["status"]) == (
            succeeded.id,
            "succeeded",
            "passed",
        )
        assert body["statistics"]["balance"]["max"] == 250.5
        assert body["statistics"]["balance"]["histogram"]["counts"] == [2, 0, 0, 1, 1, 0, 0, 0, 0, 2]

        blocked = api.get(f"/v1/runs/{failed.id}/quality").json()
        assert blocked["validation"]["status"] == "blocked"
        assert blocked["statistics"] == {}
        failures = {r["expectation"]: r for r in blocked["validation"]["results"] if not r["success"]}
        assert failures["segment is not null"]["failed_rows"] == 2
        assert [e["customer_id"] for e in failures["segment is not null"]["examples"]] == [5, 6]

        missing = api.get("/v1/runs/no-such-run/quality")
        assert missing.status_code == 404
        assert missing.json()["error"] == "NotFoundError"


def test_the_statistics_of_a_view_over_http(api: TestClient) -> None:
    with api:
        history = api.get(f"/v1/feature-views/{VIEW}/statistics", params={"limit": 5})
        assert history.status_code == 200, history.text
        (only,) = history.json()  # the blocked run published nothing: no statistics
        assert only["rows"] == 6
        assert set(only["statistics"]) == {"balance", "segment", "n", "active"}
        assert only["statistics"]["segment"]["distinct"] == 3

        unknown = api.get("/v1/feature-views/acounts/statistics")
        assert unknown.status_code == 404
        assert unknown.json()["suggestions"] == ["accounts"]

        schema = api.get("/openapi.json").json()
        assert "/v1/runs/{run_id}/quality" in schema["paths"]
        assert "/v1/feature-views/{name}/statistics" in schema["paths"]


# ---------------------------------------------------------------------- the project file


def test_the_quality_section_of_the_project_file_is_typed_and_checked(tmp_path: Path) -> None:
    from featurestore.config import ProjectConfig, QualityConfig
    from featurestore.errors import ConfigError

    def load(quality: object) -> ProjectConfig:
        return ProjectConfig.from_mapping({"project": "p", "quality": quality}, root=tmp_path, file=tmp_path / "f.yaml")

    assert ProjectConfig.from_mapping({"project": "p"}, root=tmp_path).quality == QualityConfig()
    assert load({"psi_threshold": 0.1, "quarantine": True}).quality == QualityConfig(psi_threshold=0.1, quarantine=True)
    with pytest.raises(ConfigError, match=r"key 'quality.quarantne': unknown key. Did you mean 'quarantine'\?"):
        load({"quarantne": True})
    with pytest.raises(ConfigError, match=r"key 'quality.quarantine': must be true or false, got 'yes'"):
        load({"quarantine": "yes"})
    with pytest.raises(ConfigError, match=r"key 'quality.psi_threshold': must be a positive number"):
        load({"psi_threshold": 0})
    with pytest.raises(ConfigError, match=r"key 'quality': must be a mapping"):
        load("strict")

"""The demo job, end to end, as `make demo` runs it (on a smaller bank, in a temporary folder)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BANK = REPO / "examples" / "bank"


@pytest.mark.e2e
def test_demo_runs_end_to_end_and_online_equals_offline(tmp_path: Path) -> None:
    project = tmp_path / "bank"
    project.mkdir()
    for name in ("featurestore.yaml", "features.py"):
        shutil.copy(BANK / name, project / name)
    proc = subprocess.run(
        [sys.executable, str(BANK / "demo.py"), "--project", str(project), "--customers", "300"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    comparisons = re.findall(r"customer\s+\d+: risk [0-9.]+\s+online == offline: (\w+)", out)
    assert comparisons == ["yes"] * 5, out
    auc = float(re.search(r"AUC ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    assert 0.5 < auc <= 1.0, out
    assert "registered model credit_default_gbm -> feature service credit_default" in out
    # Every view was published offline and online.
    for view in ("customer_spend", "customer_balance", "customer_profile"):
        assert re.search(rf"{view}\s+[\d,]+ rows offline\s+[\d,]+ online", out), out
    assert (project / "data" / "offline" / "customer_spend" / "_manifest.json").exists()
    # The stores and engine it uses, said before the first step.
    head = out.split("== 1.", 1)[0]
    assert "online store:  sqlite (" in head and "offline store: parquet (" in head, out
    assert "engine:        local (DuckDB and pandas in this process)" in head, out
    # Every closing hint runs as printed, from where the demo ran (here: this test's working directory).
    hints = re.findall(r"^  (\S*featurestore -C .*)$", out, re.M)
    assert [h.split()[-1] for h in hints] == ["list", "customer_spend", "runs"], out
    for hint in hints:
        ran = subprocess.run(shlex.split(hint), capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, f"{hint}: {ran.stdout}{ran.stderr}"
        assert "customer_spend" in ran.stdout, f"{hint}: {ran.stdout}"
    assert re.search(r"^Browse the catalog: \S*featurestore -C \S+ ui  → http://127\.0\.0\.1:8080/$", out, re.M), out

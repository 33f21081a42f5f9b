"""The main job, end to end on the embedded default (no server to install):

1. generate the bank's raw data (deterministic from a seed),
2. validate and register the definitions (``featurestore apply``),
3. compute every feature view once, writing offline (Parquet) and online (SQLite) in one run,
4. start the datamart API and save a point-in-time training set through it as a named dataset,
5. train a small scikit-learn model and register it as the consumer of its feature service,
6. score a few customers from online lookups, and show that each online feature vector equals
   the offline one as of the same time,
7. push a few card payments through the API as the payments service sees them, and show the next
   online lookup reflecting them,
8. check every entity of every view, online against offline, and again after a daily re-run,
10. get the saved dataset back (the same bytes, after the push and the re-run), train three model
    versions from it, each logged with the dataset to MLflow (a SQLite file in the project, no
    server) and registered in MLflow's model registry, and record them in the registry,
11. serve the model through the datamart (``POST /v1/models/{model}/predict`` over HTTP): versions
    1 and 2 split 80/20, sticky per customer, version 3 in shadow; a few hundred predictions,
12. stop the datamart, which writes the feature vectors it served (every one: ``serving_log`` in
    featurestore.yaml), and compare them with offline as of each request: the skew report.

Run with ``make demo`` from the repository root. With ``--engine spark``, step 3 runs on Spark
(``local[*]``) and publishes Hive tables (external, over the same Parquet files); the rest is
unchanged, and reads them without Spark.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from datamart.client import DatamartClient
from etl.local import LocalEngine
from featurestore.config import HiveOfflineConfig, ProjectConfig, SparkEngineConfig
from featurestore.errors import PermissionDeniedError, PushRejectedError
from featurestore.feature_requests import FeatureRequests
from featurestore.project_files import load_definitions
from featurestore.schedules import next_due, schedule_text
from featurestore.store import FeatureStore
from featurestore.validation import validate_project
from quality.statistics import render_statistics

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import model_loop  # noqa: E402
from generate_data import generate  # noqa: E402

SERVICE = "credit_default"
MODEL = "credit_default_gbm"
FRAUD_SERVICE = "card_activity"
FRAUD_MODEL = "card_fraud_rules"
DATASET = "credit_applications"
UI_URL = "http://127.0.0.1:8080/"  # where `featurestore ui` listens by default


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_api(project: Path, port: int) -> subprocess.Popen[bytes]:
    """``featurestore serve --require-auth``: every read below presents a token of its role. Its
    model server finds the models in the demo's MLflow store (``MLFLOW_TRACKING_URI``)."""
    exe = Path(sys.executable).with_name("featurestore")
    cmd = [str(exe), "-C", str(project), "serve", "--host", "127.0.0.1", "--port", str(port), "--require-auth"]
    log = open(project / "data" / "datamart.log", "wb")  # noqa: SIM115 - closed with the process
    # One OpenMP thread per prediction (unless set): scikit-learn's gradient boosting predicts on
    # OpenMP threads, which wait for each other on busy cores. One customer per request, on two
    # cores loaded by other work (load ~12): p95 5.6 s with the default threads, 93 ms with one.
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": model_loop.tracking_uri(project),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    # Over 30 s was seen on two cores loaded by other work (load average 18).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the datamart API exited early; see {project / 'data' / 'datamart.log'}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the datamart API did not answer within 120 s")


def create_token(config: ProjectConfig, name: str, role: str, *, models: tuple[str, ...] = ()) -> str:
    """A token of ``role`` for one part of the demo (``featurestore tokens create`` does the same)."""
    with FeatureStore(config) as store:
        record, secret = store.registry.create_token(store.project, name, role, actor="demo", models=models)
    scope = f", model {', '.join(models)}" if models else ""
    print(f"   token {record.name} ({record.id}): role {record.role}{scope}")
    return secret


def demo_config(project: Path, engine: str) -> ProjectConfig:
    """The project's config; for ``--engine spark``, runs on Spark (``local[*]``) publishing to the
    Hive offline store: external tables over ``data/offline``, which the datamart API reads through
    the same manifests as with the Parquet store, and a Derby metastore in ``data/metastore``."""
    config = ProjectConfig.load(project)
    if engine == "local":
        return config
    offline = HiveOfflineConfig(database=config.project, path=config.offline_store.path)
    spark = SparkEngineConfig(conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8"})
    return dataclasses.replace(config, offline_store=offline, engine=spark)


def _where(settings: Any, project: Path) -> str:
    """Where a store's settings point: its path (relative to here when under it), URL (without a
    password), hosts or name."""
    fields = settings.model_dump(exclude_none=True)
    for key in ("path", "url", "hosts", "name", "master", "database"):
        value = fields.get(key)
        if not value:
            continue
        if key == "path":
            path = Path(value) if Path(value).is_absolute() else project / value
            return _shown_path(path)
        if key == "url":
            url = urlsplit(str(value))
            host = url.hostname or ""
            return url._replace(netloc=host + (f":{url.port}" if url.port else "")).geturl()
        return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return ""


def _shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it, else absolute."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def show_stores(config: ProjectConfig, project: Path) -> None:
    """Which stores and engine the demo uses (``featurestore.yaml``, or ``--engine``)."""
    engines = {"local": "DuckDB and pandas in this process", "spark": "Spark"}
    rows = (
        ("online store", config.online_store.type, _where(config.online_store, project)),
        ("offline store", config.offline_store.type, _where(config.offline_store, project)),
        ("engine", config.engine.type, engines.get(config.engine.type, "")),
    )
    for label, kind, where in rows:
        print(f"   {label + ':':15}{kind}" + (f" ({where})" if where else ""))
    print(f"   (set in {_shown_path(config.file or project / 'featurestore.yaml')}; see the README to switch)")


def show_hive_tables(engine: Any, views: list[str]) -> None:
    """Each view's Hive table as Spark sees it, then stop Spark (the API reads without it)."""
    for name in views:
        table = engine.store.offline_store.table(name)
        rows = engine.hive_table(name).count()
        partitions = engine.spark.sql(f"SHOW PARTITIONS {table}").count()
        print(f"   Hive table {table.replace('`', '')}: {rows:,} rows in {partitions} date partitions")
    engine.spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=HERE, help="project folder (default: examples/bank)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--keep-server", action="store_true", help="leave the datamart API running at the end")
    parser.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="run the views on the embedded engine (default) or on Spark (local[*]), publishing Hive tables",
    )
    args = parser.parse_args()
    project: Path = args.project.resolve()
    started = time.perf_counter()
    started_at = datetime.now(UTC).replace(microsecond=0)
    print(f"Bank demo in {_shown_path(project)}, on:")
    show_stores(demo_config(project, args.engine), project)

    step("1. Generate the bank's raw data")
    data = project / "data"
    if data.exists():
        shutil.rmtree(data)  # the demo starts from nothing each time
    creating_mlflow_store = model_loop.create_store_in_background(project)  # for step 10
    counts = generate(data / "raw", seed=args.seed, customers=args.customers)
    print("   " + ", ".join(f"{n:,} {k}" for k, n in counts.items()))

    step("2. Validate and register the definitions (featurestore apply)")
    with FeatureStore(demo_config(project, args.engine)) as store:
        engine: Any = LocalEngine(store)
        objects = load_definitions(store.config)
        report = store.apply(objects, schema_resolver=engine.infer_schema)
        if args.engine == "spark":
            from etl.spark import SparkEngine  # pyspark loads only for --engine spark

            engine = SparkEngine(store)
        for item in report.created:
            print(f"   created {item}")

        step("3. Compute each feature view once, publishing offline and online in the same run")
        definitions = {v.name: v for v in validate_project(objects).feature_views}
        for name in definitions:
            result = engine.run(name, definitions=definitions)
            print(
                f"   {name:18} {result.rows_offline:>9,} rows offline  {result.rows_online:>6,} online  "
                f"watermark {result.watermark:%Y-%m-%d %H:%M}  {sum(result.timings.values()):.2f}s  "
                f"quality {result.quality}"
            )
        (latest,) = store.registry.list_statistics(store.project, "customer_spend", limit=1)
        print(f"   statistics of run {latest['run_id'][:8]} of customer_spend ({latest['rows']:,} rows):")
        print(textwrap.indent(render_statistics(latest["statistics"]), "     "))
        if args.engine == "spark":
            show_hive_tables(engine, list(definitions))
        now = datetime.now(UTC)
        for view in store.feature_views().values():
            if view.schedule is not None:
                print(
                    f"   {view.name} runs on schedule {schedule_text(view.schedule)} (UTC): next at "
                    f"{next_due(view.schedule, now):%Y-%m-%d %H:%M}, stale beyond {view.freshness} "
                    "(`featurestore scheduler` keeps it so)"
                )

    step("4. Start the datamart API, with tokens, and save a point-in-time training set through it")
    port = free_port()
    server = start_api(project, port)
    base = f"http://127.0.0.1:{port}"
    print(f"   datamart API on {base} (OpenAPI docs: {base}/docs), every route but /v1/health needs a token")
    config = demo_config(project, args.engine)
    training_token = create_token(config, "demo-training", "scientist")
    engineer_token = create_token(config, "demo-engineer", "engineer")
    try:
        with DatamartClient(base, token=training_token) as client:
            applications = pd.read_parquet(data / "raw" / "applications.parquet")
            spine = applications[["application_id", "customer_id", "applied_at", "defaulted"]]
            t0 = time.perf_counter()
            saved = client.create_training_dataset(
                DATASET, spine, SERVICE, timestamp_column="applied_at", description="Credit applications (demo)"
            )
            saved_rows = client.get_training_dataset(DATASET)  # the saved Parquet file, its hash checked
            training = saved_rows.to_pandas()
            elapsed = time.perf_counter() - t0
            features = [c for c in training.columns if c not in spine.columns]
            print(
                f"   {len(training):,} rows x {len(features)} features in {elapsed:.2f}s (spine had {len(spine):,} rows),"
                f" saved as training dataset {DATASET}: rows SHA-256 {saved['rows']['sha256'][:16]}, read from runs "
                f"{', '.join(r[:8] for r in saved['run_ids'])}"
            )
            print(f"   share of null values per feature: {training[features].isna().mean().round(3).to_dict()}")

            step("5. Train a small model and register it as the consumer of its feature service")
            train = training[training["applied_at"] < training["applied_at"].quantile(0.75)]
            test = training[training["applied_at"] >= training["applied_at"].quantile(0.75)]
            model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=args.seed)
            model.fit(train[features].astype(float), train["defaulted"])
            auc = roc_auc_score(test["defaulted"], model.predict_proba(test[features].astype(float))[:, 1])
            print(f"   trained on {len(train):,} applications, tested on the {len(test):,} latest: AUC {auc:.3f}")
        with DatamartClient(base, token=engineer_token) as engineer:
            engineer.register_model(MODEL, SERVICE, "Gradient boosting on credit applications (demo)")
            print(f"   registered model {MODEL} -> feature service {SERVICE} (as demo-engineer, role engineer)")
            engineer.register_model(FRAUD_MODEL, FRAUD_SERVICE, "Card fraud rules, run at each payment (demo)")

        step("6. Score customers from online lookups with the model's service token; compare with offline")
        scoring_token = create_token(config, "demo-scoring", "service", models=(MODEL,))
        with (
            DatamartClient(base, token=scoring_token) as client,
            DatamartClient(base, token=training_token) as scientist,
        ):
            customers = [int(c) for c in applications["customer_id"].drop_duplicates().head(5)]
            now = datetime.now(UTC)
            online = client.get_online_features(SERVICE, {"customer_id": customers})
            try:
                client.get_online_features("customer_balance", {"customer_id": customers})
                raise SystemExit("the service token read a feature view outside its model's feature service")
            except PermissionDeniedError:
                print(f"   demo-scoring reads {SERVICE} online, and is refused anything else (403)")
            offline = scientist.get_training_set(
                pd.DataFrame({"customer_id": customers, "event_timestamp": [now] * len(customers)}), SERVICE
            ).to_pandas()
            vectors = pd.DataFrame({f: online["features"][f]["values"] for f in features}, index=customers)
            scores = model.predict_proba(vectors.astype(float))[:, 1]
            all_equal = True
            for i, cid in enumerate(customers):
                on = [online["features"][f]["values"][i] for f in features]
                off = [None if pd.isna(v) else v for v in offline.loc[i, features].tolist()]
                equal = all(_same(a, b) for a, b in zip(on, off, strict=True))
                all_equal &= equal
                statuses = {online["features"][f]["statuses"][i] for f in features}
                print(
                    f"   customer {cid:>5}: risk {scores[i]:.3f}  online == offline: {'yes' if equal else 'NO'}"
                    f"  ({len(features)} features, statuses {sorted(statuses)})"
                )
                if not equal:
                    for f, a, b in zip(features, on, off, strict=True):
                        if not _same(a, b):
                            print(f"      {f}: online {a!r} offline {b!r}")
            latencies = []
            for _ in range(200):
                t0 = time.perf_counter()
                client.get_online_features(SERVICE, {"customer_id": customers[:1]})
                latencies.append((time.perf_counter() - t0) * 1000)
            print(
                f"   online lookup of one customer through the API: p50 {statistics.median(latencies):.2f} ms, "
                f"p95 {np.percentile(latencies, 95):.2f} ms over {len(latencies)} calls"
            )
            if not all_equal:
                raise SystemExit("online and offline feature vectors differ")

        step("7. Push card payments as the payments service sees them; the next lookup reflects them")
        if args.engine == "spark":
            print("   (skipped: pushing needs the Parquet offline store; --engine spark publishes Hive tables)")
        else:
            payments_token = create_token(config, "demo-payments", "service", models=(FRAUD_MODEL,))
            with DatamartClient(base, token=payments_token) as payments:
                push_payments(payments, [int(c) for c in applications["customer_id"].drop_duplicates().head(3)])

        with DatamartClient(base, token=engineer_token) as client:
            step("8. Check every entity of every view: online store against offline store")
            for name in definitions:
                check = client.check_consistency(name, sample=None)
                print(
                    f"   {name:18} {check['checked']:>6,} entities: {check['matched']:,} match, "
                    f"{check['mismatched']} mismatched, {check['missing']} missing, {check['extra']} extra online"
                )
                if not check["consistent"]:
                    raise SystemExit(f"online and offline stores differ for {name}: {check['examples'][:3]}")

            step("9. Re-run the last 14 days of customer_spend, as a daily job would, and check again")
            request_id = file_and_link_request(project, args.engine)
            rerun_last_days(project, args.engine, days=14)
            show_request(project, args.engine, request_id)
            check = client.check_consistency("customer_spend", sample=None)
            print(
                f"   customer_spend     {check['checked']:>6,} entities: {check['matched']:,} match, "
                f"{check['mismatched']} mismatched, {check['missing']} missing, {check['extra']} extra online"
            )
            if not check["consistent"]:
                raise SystemExit(f"online and offline stores differ after the re-run: {check['examples'][:3]}")

        step("10. Get the saved dataset back, train versions from it, log them to MLflow and register them")
        with DatamartClient(base, token=training_token) as scientist:
            again = scientist.get_training_dataset(DATASET)
            same = again.equals(saved_rows)
            print(
                f"   {DATASET} after the push and the re-run: {again.num_rows:,} rows, the same as saved: "
                f"{'yes' if same else 'NO'} (SHA-256 checked against the registry's)"
            )
            print("   " + scientist.verify_training_dataset(DATASET)["summary"])
            if not same:
                raise SystemExit(f"training dataset {DATASET} came back different from the rows saved")
        print(f"   MLflow: tracking and model registry in {_shown_path(project / 'data' / 'mlflow')} (no server)")
        aucs = model_loop.train_versions(
            config, project, MODEL, DATASET, again.to_pandas(), features, args.seed, creating_mlflow_store
        )
        if aucs[1] != auc:
            raise SystemExit(f"version 1 (AUC {aucs[1]}) is not the model of step 5 (AUC {auc}) trained again")

        step("11. Serve the model over HTTP: versions 1 and 2 split 80/20, version 3 in shadow")
        model_loop.set_traffic(config, MODEL)
        customers = [int(c) for c in applications["customer_id"].drop_duplicates().head(250)]
        traffic = model_loop.send_traffic(base, scoring_token, MODEL, SERVICE, customers, repeats=50, features=features)
        model_loop.report_traffic(traffic, model_loop.shadow_counts(base, engineer_token, MODEL))

        step("12. Stop the datamart (it writes the vectors it logged) and report the skew of what it served")
        server.terminate()
        server.wait(timeout=120)  # at shutdown it flushes the served-vector log (serving_log in featurestore.yaml)
        print(f"   featurestore skew {SERVICE} --since {started_at.isoformat(timespec='seconds')}")
        with FeatureStore(config) as store:
            skew = store.skew_report(SERVICE, started_at, actor="demo")
        print(textwrap.indent(skew.render(), "   "))
        expired = skew.counts()["expired"]
        if expired:
            print(
                f"   expired: {expired} values where online and offline judged the view's TTL differently (one "
                "withheld a value as expired that the other held live as of the request)"
            )
        if args.keep_server:
            server = start_api(project, port)
        print(f"\nDone in {time.perf_counter() - started:.1f}s. Registry: {project / 'data' / 'registry.db'}")
        for line in explore_hints(project, keep_server=args.keep_server):
            print(line)
    finally:
        if args.keep_server:
            print(f"datamart API still running on {base} (pid {server.pid})")
            print(
                f"Browse the catalog: {base}/ui/ (it requires tokens: sign in with one from "
                f"'{featurestore_command()} -C {_shown_path(project)} tokens create --name you --role scientist')"
            )
        else:
            server.terminate()
            server.wait(timeout=10)


def push_payments(client: DatamartClient, customers: list[int]) -> None:
    """Push one card payment per customer (``POST /v1/push/last_card_payment``), then read them
    back online as the fraud rules would; and show a batch refused by the view's expectations."""
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        {
            "customer_id": c,
            "ts": (now - timedelta(seconds=10 * i)).isoformat(),
            "amount": 12.5 + 40 * i,
            "merchant_category": category,
        }
        for i, (c, category) in enumerate(zip(customers, ("grocery", "travel", "fuel"), strict=False))
    ]
    before = client.get_online_features(FRAUD_SERVICE, {"customer_id": customers})
    answer = client.push("last_card_payment", rows)
    after = client.get_online_features(FRAUD_SERVICE, {"customer_id": customers})
    print(
        f"   pushed {answer['rows']} payments (push {answer['push_id'][:8]}): offline first, then online for "
        f"{answer['entities']} customers"
    )
    for i, row in enumerate(rows):
        was = before["features"]["amount"]["values"][i]
        now_ = after["features"]["amount"]["values"][i]
        shown = after["features"]["merchant_category"]["values"][i]
        was_text = "none in its TTL" if was is None else was
        print(f"   customer {row['customer_id']:>5}: last payment {was_text} -> {now_} ({shown}) at {row['ts']}")
        if now_ != row["amount"]:
            raise SystemExit(f"the online lookup does not reflect the pushed payment of customer {row['customer_id']}")
    try:
        client.push("last_card_payment", [{**rows[0], "amount": -5.0}])
        raise SystemExit("a payment with a negative amount was accepted")
    except PushRejectedError as err:
        print(f"   a payment of -5.0 is refused with HTTP 422 naming row(s) {err.rows}; nothing was published")


def featurestore_command() -> str:
    """How to call the ``featurestore`` command from here: by name when it is on PATH (an
    activated venv), else by its path in this interpreter's venv (``.venv/bin/featurestore``)."""
    exe = Path(sys.executable).with_name("featurestore")
    on_path = shutil.which("featurestore")
    if on_path and Path(on_path).resolve() == exe.resolve():
        return "featurestore"
    shown = _shown_path(exe)
    return shown if "/" in shown else f"./{shown}"


def explore_hints(project: Path, *, keep_server: bool) -> list[str]:
    """The closing hints, each a command that works as printed from the working directory."""
    fs = featurestore_command()
    where = _shown_path(project)
    activate = _shown_path(Path(sys.executable).with_name("activate"))
    lines = [
        f"Explore the registry (`. {activate}` puts `featurestore` on your PATH):"
        if fs != "featurestore"
        else "Explore the registry:",
        *(f"  {fs} -C {where} {verb}" for verb in ("list", "describe customer_spend", "runs")),
    ]
    if not keep_server:
        repo_root = HERE.parents[1]
        in_root = Path.cwd().resolve() == repo_root and project == HERE
        ui = "make ui" if in_root else f"{fs} -C {where} ui"
        lines.append(f"Browse the catalog: {ui}  → {UI_URL}")
    return lines


def file_and_link_request(project: Path, engine_name: str) -> int:
    """A scientist files a feature request; an engineer links it to the features of
    customer_spend that answer it: the next run of customer_spend (the re-run) delivers it."""
    with FeatureStore(demo_config(project, engine_name)) as store:
        requests = FeatureRequests(store)
        filed = requests.file(
            title="card spend trend, 30 against 90 days",
            entity="customer",
            description="card spend over the last 30 days and over the last 90 days, per customer",
            reason="the credit model should see a customer's spending fall or grow",
            model="credit_default_gbm",
            actor="demo-scientist",
        )
        linked = requests.link(
            filed.id, view="customer_spend", features=["spend_30d", "spend_90d"], actor="demo-engineer"
        )
    print(
        f"   feature request #{filed.id} '{filed.title}' filed by {filed.requester}; linked by "
        f"{linked.decided_by} to {linked.view}: {', '.join(linked.features)} ({linked.status.value})"
    )
    return filed.id


def show_request(project: Path, engine_name: str, request_id: int) -> None:
    """The request's state after the run, and its requester's notification in the registry UI."""
    with FeatureStore(demo_config(project, engine_name)) as store:
        requests = FeatureRequests(store, channels=[])
        record = requests.get(request_id)
        notices = requests.notifications(record.requester)
    run = record.delivered_run[:8] if record.delivered_run else "none"
    print(f"   feature request #{record.id}: {record.status.value} by run {run}")
    for notice in notices[:1]:
        print(f"   notification to {notice.recipient}: {notice.message}")


def rerun_last_days(project: Path, engine_name: str, *, days: int) -> None:
    """What ``featurestore run customer_spend --start <days ago> --end <tomorrow>`` does, on the
    demo's engine and stores. Customers quiet for longer than the 90-day lookback drop out of the
    window: the run removes their rows there offline, and online goes back to each one's latest
    remaining row."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=days), today + timedelta(days=1)
    with FeatureStore(demo_config(project, engine_name)) as store:
        engine: Any = LocalEngine(store)
        if engine_name == "spark":
            from etl.spark import SparkEngine

            engine = SparkEngine(store)
        definitions = {v.name: v for v in validate_project(load_definitions(store.config)).feature_views}
        result = engine.run("customer_spend", start=start, end=end, definitions=definitions, progress=False)
        if engine_name == "spark":
            engine.spark.stop()
    print(
        f"   featurestore run customer_spend --start {start:%Y-%m-%d} --end {end:%Y-%m-%d}: "
        f"{result.rows_offline:,} rows in the window ({result.rows_before:,} before), "
        f"{result.rows_online:,} entities derived online, {result.rows_online_removed:,} removed"
    )


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return float(a) == float(b)  # type: ignore[arg-type]
    return bool(a == b)


if __name__ == "__main__":
    main()

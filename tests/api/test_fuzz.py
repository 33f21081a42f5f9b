"""The datamart under generated requests: no answer is a 5xx, and every 4xx body says what to fix.

Two generators, both seeded and without Hypothesis' example database, so every run sends the same
requests (change ``SEED`` to explore others):

* schemathesis reads the app's own OpenAPI document and sends, for every operation, requests that
  fit it (positive) and requests that break it (negative); path parameters also get real names so
  that the requests reach past the "not found" answers;
* Hypothesis strategies written for the reads aim at what the schema cannot say: key values of
  every JSON kind and size, times with and without offsets and beyond years 1-9999, reserved,
  repeated and missing columns, CSV and Parquet spines with hostile contents.

The app serves its own copy of the test project: the generated requests register models and run
repairs, which must not leak into the other tests' registry.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from datamart.app import create_app
from featurestore.store import FeatureStore

SEED = 20261128
SCHEMA_EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 25}


def _real_name(path: str, parameter: str, run_id: str) -> str:
    if parameter == "run_id":
        return run_id
    return "churn" if path.startswith("/v1/feature-services/") else "customer_stats"


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        database=None,  # the same requests on every run: no replay of past failures from a local folder
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every problem is recorded, not raised
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


@pytest.fixture(scope="module")
def fuzz_app(own_project_dir: Path) -> Iterator[FastAPI]:
    with FeatureStore(own_project_dir) as store:
        yield create_app(store)


@pytest.fixture(scope="module")
def fuzz_api(fuzz_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(fuzz_app, raise_server_exceptions=False) as client:
        yield client


def _problem(status: int, content: bytes) -> str | None:
    """What is wrong with an answer, if anything."""
    if status >= 500:
        return f"answered {status}: {content[:300]!r}"
    if status < 400:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        return f"answered {status} with a body that is not JSON: {content[:200]!r}"
    if isinstance(body, str):  # Feast's protocol (/get-online-features): Feast's error detail, a JSON string
        try:
            body = json.loads(body)
        except ValueError:
            return f"answered {status} with a string that is not Feast's error detail: {body[:200]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return f"answered {status} without the error body: {body!r:.200}"
    message = body.get("message")
    # A message that names what is wrong is longer than a bare reason phrase ("Not Found").
    if not isinstance(message, str) or len(message) < 25:
        return f"answered {status} with a message that does not say what to fix: {message!r}"
    return None


class Problems:
    """Problems found, at most a few per kind of answer, to report together at the end."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}
        self.cases = 0

    def check(self, where: str, request: str, status: int, content: bytes) -> None:
        self.cases += 1
        problem = _problem(status, content)
        if problem is not None:
            self.found.setdefault(f"{where}: {status}", []).append(f"{request:.400} -> {problem}")

    def assert_none(self, at_least: int) -> None:
        report = "\n".join(f"{examples[0]} ({len(examples)}x)" for examples in self.found.values())
        assert not self.found, f"{len(self.found)} kind(s) of bad answers:\n{report}"
        assert self.cases >= at_least, f"only {self.cases} requests were sent"


# ---------------------------------------------------------------------- from the OpenAPI document


def test_requests_generated_from_the_openapi_document(fuzz_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    problems = Problems()
    store: FeatureStore = fuzz_app.state.store
    run_id = store.registry.list_runs(store.project, limit=1)[0].id
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        runs: list[tuple[GenerationMode, dict[str, Any] | None]] = [(m, None) for m in SCHEMA_EXAMPLES]
        real = {p.name: _real_name(operation.path, p.name, run_id) for p in operation.path_parameters}
        if real:  # also with the names of real objects, to get past the 404s
            runs.append((GenerationMode.POSITIVE, real))
        for mode, path_parameters in runs:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

            @seed(SEED)
            @_settings(SCHEMA_EXAMPLES[mode])
            @given(case=strategy)
            def send(case: Any) -> None:
                label = case.operation.label
                request = (
                    f"{label} {case.formatted_path} query={case.query} headers={case.headers} body={case.body!r:.200}"
                )
                try:
                    response = case.call()
                except Exception as err:  # the app raised through the transport: a 500 for a real client
                    problems.check(label, request, 500, f"{type(err).__name__}: {err}".encode())
                    return
                problems.check(label, request, response.status_code, response.content)

            # An operation without parameters or body has no way to break its schema: Unsatisfiable.
            with contextlib.suppress(Unsatisfiable):
                send()
    problems.assert_none(at_least=800)


# ---------------------------------------------------------------------- aimed at the reads

FEATURES = st.sampled_from(
    [
        "churn",
        "customer_stats:spend_1d",
        ["customer_stats:spend_1d", "customer_balance:balance"],
        "customer_profile",
        ["customer_balance"],
    ]
)
INTS = st.one_of(
    st.integers(-3, 5),
    st.sampled_from([2**63 - 1, -(2**63), 2**63, 2**64, -(2**63) - 1, 10**30]),
    st.integers(),
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=False), st.text(max_size=8))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=4,
)
OFFSETS = st.one_of(
    st.none(),
    st.just(UTC),
    st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23))),
)
TIME_TEXT = st.one_of(
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(), OFFSETS),
    st.builds(lambda d, sep: d.isoformat(sep), st.datetimes(timezones=st.just(UTC)), st.sampled_from(["T", " "])),
    st.dates().map(str),
    st.sampled_from(
        [
            "-0001-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "10000-01-01T00:00:00Z",
            "2024-03-02T00:00:00.123456789Z",
            "2024-02-30T00:00:00Z",
            "2024-03-02T24:00:00Z",
            "20240302T120000Z",
            "2024-03-02T12:00:00+25:00",
            "1700000000",
            "",
            " ",
        ]
    ),
    st.text(max_size=12),
)
KEYS = st.lists(st.one_of(INTS, st.text(max_size=4), st.booleans(), st.none(), st.floats()), max_size=4)
COLUMN_NAMES = st.sampled_from(["label", "__row_id", "__spine_ts", "spend_1d", "", "customer_id", "event_timestamp"])


@st.composite
def spines(draw: st.DrawFn) -> Any:
    rows = draw(st.integers(0, 3))
    columns: dict[str, list[Any]] = {
        "customer_id": draw(st.lists(st.one_of(INTS, SCALARS), min_size=rows, max_size=rows)),
        "event_timestamp": draw(st.lists(st.one_of(TIME_TEXT, SCALARS), min_size=rows, max_size=rows)),
    }
    for name in draw(st.lists(COLUMN_NAMES, max_size=2)):
        columns[name] = draw(st.lists(JSON_VALUES, min_size=rows, max_size=draw(st.sampled_from([rows, rows + 1]))))
    if draw(st.booleans()):
        return columns
    return [dict(zip(columns, values, strict=False)) for values in zip(*columns.values(), strict=False)]


def _run(examples: int, strategy: st.SearchStrategy[Any], send: Callable[[Any], None]) -> None:
    @seed(SEED)
    @_settings(examples)
    @given(value=strategy)
    def run(value: Any) -> None:
        send(value)

    run()


def test_generated_online_lookups(fuzz_api: TestClient) -> None:
    problems = Problems()
    entities = st.dictionaries(st.sampled_from(["customer_id", "other", ""]), KEYS, max_size=2)
    bodies = st.fixed_dictionaries(
        {"features": FEATURES, "entities": entities}, optional={"full_feature_names": st.booleans()}
    )

    def send(body: dict[str, Any]) -> None:
        content = json.dumps(body).encode()  # stdlib: integers of any size, as a client may send
        response = fuzz_api.post("/v1/online-features", content=content, headers={"content-type": "application/json"})
        problems.check("online", content.decode(), response.status_code, response.content)

    _run(400, bodies, send)
    problems.assert_none(at_least=400)


def test_generated_training_sets_from_json(fuzz_api: TestClient) -> None:
    problems = Problems()
    bodies = st.fixed_dictionaries(
        {"features": FEATURES, "spine": spines()},
        optional={"timestamp_column": st.sampled_from(["event_timestamp", "customer_id", "label", "nope"])},
    )

    def send(body: dict[str, Any]) -> None:
        content = json.dumps(body).encode()
        fmt = "json" if len(content) % 3 else "csv"
        response = fuzz_api.post(
            f"/v1/training-set?format={fmt}", content=content, headers={"content-type": "application/json"}
        )
        problems.check("training set", content.decode(), response.status_code, response.content)

    _run(500, bodies, send)
    problems.assert_none(at_least=500)


def test_generated_reference_data_times(fuzz_api: TestClient) -> None:
    problems = Problems()
    queries = st.fixed_dictionaries(
        {"as_of": TIME_TEXT},
        optional={"features": st.sampled_from(["spend_1d", "spend", ""]), "include_expired": st.booleans()},
    )

    def send(params: dict[str, Any]) -> None:
        response = fuzz_api.get("/v1/reference-data/customer_stats", params=params)
        problems.check("reference data", str(params), response.status_code, response.content)

    _run(200, queries, send)
    problems.assert_none(at_least=200)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    header = draw(
        st.lists(st.sampled_from(["customer_id", "event_timestamp", "ts", "label", "__row_id", ""]), max_size=4)
    )
    cell = st.one_of(TIME_TEXT, st.integers().map(str), st.text(max_size=5))
    rows = draw(st.lists(st.lists(cell, min_size=len(header), max_size=len(header) + 1), max_size=3))
    sink = io.StringIO()
    writer = csv.writer(sink)
    writer.writerow(header)
    writer.writerows(rows)
    return sink.getvalue().encode()


@st.composite
def parquet_files(draw: st.DrawFn) -> bytes:
    rows = draw(st.integers(0, 3))
    ts_type = draw(
        st.sampled_from(
            [
                pa.timestamp("s", tz="UTC"),
                pa.timestamp("ms"),
                pa.timestamp("us", tz="UTC"),
                pa.timestamp("ns", tz="UTC"),
            ]
        )
    )
    ts_values = draw(st.lists(st.integers(-(2**53), 2**53), min_size=rows, max_size=rows))  # Parquet keeps s as ms
    key_type = draw(st.sampled_from([pa.int64(), pa.uint64(), pa.string(), pa.float64(), pa.bool_()]))
    keys = {
        "int64": st.integers(-(2**63), 2**63 - 1),
        "uint64": st.integers(0, 2**64 - 1),
        "string": st.text(max_size=4),
        "double": st.floats(),
        "bool": st.booleans(),
    }[str(key_type)]
    table = pa.table(
        {
            "customer_id": pa.array(draw(st.lists(keys, min_size=rows, max_size=rows)), key_type),
            "ts": pa.array(ts_values, ts_type),
            "day": pa.array(
                draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=rows, max_size=rows)), pa.date32()
            ),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.mark.parametrize(("kind", "files"), [("csv", csv_files()), ("parquet", parquet_files())])
def test_generated_uploaded_spines(fuzz_api: TestClient, kind: str, files: st.SearchStrategy[bytes]) -> None:
    problems = Problems()

    def send(content: bytes) -> None:
        response = fuzz_api.post(
            "/v1/training-set/upload",
            files={"spine": (f"spine.{kind}", content, "application/octet-stream")},
            data={"features": "churn", "timestamp_column": "ts"},
        )
        problems.check(f"upload {kind}", repr(content[:300]), response.status_code, response.content)

    _run(200, files, send)
    problems.assert_none(at_least=200)

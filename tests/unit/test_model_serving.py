"""The model server's logic without MLflow: a fake loader stands for ``mlflow.pyfunc.load_model``.
Splits and their stickiness, which version predicts which entity, the shadow's failure kept from
the caller, traffic settings refused when wrong, unknown models and versions named. The round
trip with real MLflow models is tests/integration/test_model_server.py."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tiny_projects import new_project

from featurestore import Entity, Feature, FeatureService, FeatureView, FileSource, Float64, Int64
from featurestore.errors import InvalidRequestError, NotFoundError
from featurestore.model_serving import ModelServer, parse_split, set_model_traffic, version_for
from featurestore.registry import ModelVersionRecord
from featurestore.store import FeatureStore

PROJECT = "cards"
MODEL = "spend_classifier"


class VersionModel:
    """Predicts its version's number for every row; version 8 fails (a broken shadow)."""

    def __init__(self, uri: str) -> None:
        self.version = int(uri.rsplit("/", 1)[1])
        self.columns: list[str] = []

    def predict(self, frame: Any) -> list[int]:
        if self.version == 8:
            raise RuntimeError("this model is broken")
        self.columns = list(frame.columns)
        return [self.version] * len(frame)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    customer = Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,))
    source = FileSource(name="transactions", path="data/t.parquet", timestamp_field="ts")
    view = FeatureView(
        name="daily_spend",
        entities=(customer,),
        source=source,
        ttl=timedelta(days=2),
        features=(Feature("spend", Float64), Feature("n", Int64)),
    )
    with FeatureStore(new_project(tmp_path / PROJECT, PROJECT), definitions_ttl=0) as s:
        s.apply([customer, source, view, FeatureService(name="spend_model", features=(view,))])
        for number in (1, 2, 8, 9):
            s.registry.record_model_version(
                ModelVersionRecord(
                    PROJECT,
                    MODEL,
                    number,
                    "run",
                    f"models:/{MODEL}/{number}",
                    "spend_model",
                    {"daily_spend": 1},
                    (),
                    datetime(2024, 3, 5, tzinfo=UTC),
                    "ana@example",
                )
            )
        yield s


def server(store: FeatureStore) -> ModelServer:
    return ModelServer(store, loader=VersionModel, ttl=0)


def test_split_text_is_parsed_or_refused_with_the_form_to_write() -> None:
    assert parse_split("1=90, 2=10") == {1: 90, 2: 10}
    with pytest.raises(InvalidRequestError, match=r"'2:10' is not VERSION=PERCENT; write e.g. '1=90,2=10'"):
        parse_split("1=90,2:10")
    with pytest.raises(InvalidRequestError, match="names version 1 twice"):
        parse_split("1=50,1=50")


def test_a_split_holds_its_share_within_three_sigma_and_is_a_function_of_the_key() -> None:
    n = 10_000
    for split in ({1: 90, 2: 10}, {1: 50, 2: 50}, {4: 1, 7: 99}):
        chosen = [version_for(MODEL, f"customer_id={i}", split) for i in range(n)]
        for v, percent in split.items():
            p = percent / 100
            assert abs(chosen.count(v) / n - p) <= 3 * math.sqrt(p * (1 - p) / n), (split, v)
        assert chosen == [version_for(MODEL, f"customer_id={i}", split) for i in range(n)]
    # Another model splits the same entities independently (its name is hashed in).
    a = [version_for("a", f"k={i}", {1: 50, 2: 50}) for i in range(1000)]
    b = [version_for("b", f"k={i}", {1: 50, 2: 50}) for i in range(1000)]
    assert a != b


def test_each_entity_is_predicted_by_its_version_and_a_failing_shadow_fails_nothing(
    store: FeatureStore, caplog: pytest.LogCaptureFixture
) -> None:
    models = server(store)
    keys = {"customer_id": list(range(1, 2001))}
    assert models.predict(MODEL, keys).versions == [9] * 2000  # the newest, without a setting
    set_model_traffic(store, MODEL, {1: 70, 2: 30}, shadow=8, actor="ana@example")
    with caplog.at_level(logging.INFO, logger="featurestore.model_serving.shadow"):
        served = models.predict(MODEL, keys)
    assert served.predictions == served.versions  # each entity's prediction came from its version's model
    assert set(served.versions) == {1, 2}
    assert served.statuses["spend"] == ["missing"] * 2000  # nothing was run: every entity missing online
    assert models.model(store.registry.get_model_version(PROJECT, MODEL, 1)).columns == ["spend", "n"]
    assert models.shadow_stats()[(MODEL, 8)].failures == 1
    assert "shadow version 8 of model spend_classifier failed" in caplog.text
    # Sticky: alone, each entity gets the version it got in the batch.
    for i in (0, 17, 1999):
        assert models.predict(MODEL, {"customer_id": [keys["customer_id"][i]]}).versions == [served.versions[i]]
    assert models.loads == {(MODEL, 1): 1, (MODEL, 2): 1, (MODEL, 8): 1, (MODEL, 9): 1}
    assert models.predict(MODEL, keys, version=2).versions == [2] * 2000


def test_wrong_settings_and_unknown_names_are_refused(store: FeatureStore) -> None:
    models = server(store)
    with pytest.raises(NotFoundError, match=r"Model 'spend_clasifier' not found .*Did you mean 'spend_classifier'"):
        models.predict("spend_clasifier", {"customer_id": [1]})
    with pytest.raises(NotFoundError, match=r"'spend_classifier/4' not found .* has versions 1, 2, 8, 9"):
        models.predict(MODEL, {"customer_id": [1]}, version=4)
    with pytest.raises(NotFoundError, match=r"has versions 1, 2, 8, 9"):
        set_model_traffic(store, MODEL, {1: 50, 4: 50})
    with pytest.raises(InvalidRequestError, match=r"they sum to 90"):
        set_model_traffic(store, MODEL, {1: 50, 2: 40})
    with pytest.raises(InvalidRequestError, match=r"version 2 has 0 %"):
        set_model_traffic(store, MODEL, {1: 100, 2: 0})
    with pytest.raises(InvalidRequestError, match=r"version 2 .* is in the split"):
        set_model_traffic(store, MODEL, {1: 50, 2: 50}, shadow=2)
    assert store.registry.list_model_traffic(PROJECT) == []
    set_model_traffic(store, MODEL, {1: 100})
    assert store.registry.clear_model_traffic(PROJECT, MODEL)
    assert not store.registry.clear_model_traffic(PROJECT, MODEL)

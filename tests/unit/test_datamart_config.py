"""Section ``datamart`` of ``featurestore.yaml``: the limits of what one request may send."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurestore import ConfigError
from featurestore.config import CONFIG_FILE_NAME, DatamartConfig, ProjectConfig


def load(tmp_path: Path, text: str) -> ProjectConfig:
    (tmp_path / CONFIG_FILE_NAME).write_text("project: shop\n" + text)
    return ProjectConfig.load(tmp_path)


def test_defaults_bound_every_request() -> None:
    limits = ProjectConfig.from_mapping({"project": "shop"}, root=Path("/tmp")).datamart
    assert limits == DatamartConfig()
    assert (limits.max_body_bytes, limits.max_upload_bytes) == (10 * 2**20, 200 * 2**20)
    assert (limits.max_lookup_entities, limits.max_spine_rows) == (10_000, 1_000_000)
    assert (limits.max_url_bytes, limits.max_header_bytes) == (8192, 32768)


def test_limits_are_read_from_the_file(tmp_path: Path) -> None:
    limits = load(tmp_path, "datamart:\n  max_body_bytes: 2048\n  max_lookup_entities: 100\n").datamart
    assert (limits.max_body_bytes, limits.max_lookup_entities) == (2048, 100)
    assert limits.max_upload_bytes == 200 * 2**20  # the others keep their defaults
    assert load(tmp_path, "datamart:\n").datamart == DatamartConfig()  # an empty section


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("datamart:\n  max_body_byte: 2048\n", "datamart.max_body_byte", "max_body_bytes"),
        ("datamart:\n  max_body_bytes: '2048'\n", "datamart.max_body_bytes", "integer"),
        ("datamart:\n  max_body_bytes: 10\n", "datamart.max_body_bytes", "1024"),
        ("datamart:\n  max_lookup_entities: 0\n", "datamart.max_lookup_entities", "1"),
        ("datamart: 10485760\n", "datamart", "mapping"),
    ],
)
def test_bad_limits_are_refused_naming_the_file_and_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert caught.value.key == key
    assert caught.value.file == str(tmp_path / CONFIG_FILE_NAME)
    assert words in str(caught.value)

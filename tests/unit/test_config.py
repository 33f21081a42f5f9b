"""``featurestore.yaml``: defaults, unknown keys and wrong types rejected by file and key, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurestore import ConfigError
from featurestore.config import (
    CONFIG_FILE_NAME,
    LocalEngineConfig,
    ParquetOfflineConfig,
    ProjectConfig,
    SqliteOnlineConfig,
    render_default_config,
)
from featurestore.online.cassandra import CassandraOnlineConfig
from featurestore.online.redis import RedisOnlineConfig
from featurestore.store import FeatureStore


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE_NAME
    path.write_text(text)
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        ProjectConfig.load(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")  # names the file first
    return caught.value


# ---------------------------------------------------------------------- defaults


def test_only_the_project_name_is_required(tmp_path: Path) -> None:
    write_config(tmp_path, "project: shop\n")
    config = ProjectConfig.load(tmp_path)
    assert config.project == "shop"
    assert config.root == tmp_path.resolve()
    assert config.file == tmp_path / CONFIG_FILE_NAME
    assert config.definitions == ("features.py",)
    assert config.registry == "sqlite:///data/registry.db"
    assert config.offline_store == ParquetOfflineConfig(path=Path("data/offline"))
    assert config.online_store == SqliteOnlineConfig(path=Path("data/online.db"))
    assert config.engine == LocalEngineConfig()


def test_the_file_init_writes_loads_to_the_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, render_default_config("shop"))
    config = ProjectConfig.load(tmp_path / CONFIG_FILE_NAME)  # the file itself, not its folder
    bare = ProjectConfig.from_mapping({"project": "shop"}, root=tmp_path.resolve(), file=config.file)
    assert config == bare


def test_sections_take_a_type_name_or_a_mapping(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        "project: shop\n"
        "definitions: defs.py\n"
        "online_store: {type: redis, url: 'redis://cache:6380/2', cluster: true, socket_timeout: 2}\n"
        "offline_store: {path: lake}\n",
    )
    config = ProjectConfig.load(tmp_path)
    assert config.definitions == ("defs.py",)
    assert config.online_store == RedisOnlineConfig(url="redis://cache:6380/2", cluster=True, socket_timeout=2)
    assert config.offline_store == ParquetOfflineConfig(path=Path("lake"))


def test_cassandra_hosts_become_a_tuple(tmp_path: Path) -> None:
    write_config(tmp_path, "project: shop\nonline_store: {type: cassandra, hosts: [a, b], port: 9043}\n")
    online = ProjectConfig.load(tmp_path).online_store
    assert online == CassandraOnlineConfig(hosts=("a", "b"), port=9043)


# ---------------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    err = load_error(tmp_path, "project: shop\nonline_stor: {type: sqlite}\n")
    assert err.key == "online_stor"
    assert "key 'online_stor': unknown key. Did you mean 'online_store'" in str(err)


def test_unknown_key_of_a_section_is_named_with_a_suggestion(tmp_path: Path) -> None:
    err = load_error(tmp_path, "project: shop\nonline_store: {type: sqlite, pth: x.db}\n")
    assert err.key == "online_store.pth"
    assert "Did you mean 'path'?" in str(err)


def test_unknown_store_type_is_named_with_a_suggestion(tmp_path: Path) -> None:
    err = load_error(tmp_path, "project: shop\nonline_store: {type: reddis}\n")
    assert err.key == "online_store.type"
    assert "unknown type 'reddis'. Did you mean 'redis'?" in str(err)


# ---------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("project: 42\n", "project", "is required"),
        ("definitions: {a: 1}\n", "definitions", "must be a file name or a list of file names"),
        ("definitions: [features.py, 3]\n", "definitions", "must be a file name or a list of file names"),
        ("registry: 5\n", "registry", "must be an SQLAlchemy URL"),
        ("online_store: [sqlite]\n", "online_store", "must be a mapping with a 'type'"),
        ("online_store: {type: redis, cluster: 'yes'}\n", "online_store.cluster", "must be true or false"),
        ("online_store: {type: redis, batch_size: many}\n", "online_store.batch_size", "must be an integer"),
        ("online_store: {type: redis, batch_size: true}\n", "online_store.batch_size", "must be an integer"),
        ("online_store: {type: redis, socket_timeout: fast}\n", "online_store.socket_timeout", "must be a number"),
        ("online_store: {type: redis, url: 6379}\n", "online_store.url", "must be a string"),
        ("online_store: {type: sqlite, path: 42}\n", "online_store.path", "must be a path"),
        ("offline_store: {path: [a, b]}\n", "offline_store.path", "must be a path"),
        ("online_store: {type: cassandra, hosts: 5}\n", "online_store.hosts", "must be a list"),
        ("online_store: {type: cassandra, hosts: [a, 5]}\n", "online_store.hosts", "must be a list of strings"),
        ("online_store: {type: cassandra, replication: 3}\n", "online_store.replication", "must be a mapping"),
    ],
)
def test_wrong_types_are_rejected_naming_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    body = text if text.startswith("project:") else "project: shop\n" + text
    err = load_error(tmp_path, body)
    assert err.key == key
    assert words in str(err)


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    assert "must be a mapping of keys to values" in str(load_error(tmp_path, "- project\n- shop\n"))


def test_invalid_yaml_is_rejected(tmp_path: Path) -> None:
    assert "is not valid YAML" in str(load_error(tmp_path, "project: [shop\n"))


def test_a_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run 'featurestore init'") as caught:
        ProjectConfig.load(tmp_path)
    assert caught.value.file == str(tmp_path / CONFIG_FILE_NAME)


# ---------------------------------------------------------------------- paths


def test_relative_paths_are_resolved_against_the_files_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "projects" / "shop"
    write_config(
        project,
        "project: shop\n"
        "registry: sqlite:///state/registry.db\n"
        "offline_store: {path: lake/offline}\n"
        "online_store: {type: sqlite, path: ../shared/online.db}\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = ProjectConfig.load(Path("../projects/shop"))  # a relative path to the folder, too
    root = project.resolve()
    assert config.root == root
    assert config.registry_url == f"sqlite:///{root / 'state' / 'registry.db'}"
    assert config.resolve(config.offline_store.path) == root / "lake" / "offline"
    assert config.resolve("features.py") == root / "features.py"
    with FeatureStore(config) as store:
        assert store.offline_store.root == root / "lake" / "offline"
        store.online_store.count  # noqa: B018 - opening the store creates its file
        store.online_store.prepare([])
    assert (root / "state" / "registry.db").is_file()
    assert (tmp_path / "projects" / "shared" / "online.db").is_file()
    assert list(elsewhere.iterdir()) == []  # nothing was created in the working directory


def test_absolute_paths_and_other_urls_are_kept(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_config(
        tmp_path / "p",
        f"project: shop\nregistry: postgresql+psycopg://u@db/reg\noffline_store: {{path: {lake}}}\n",
    )
    config = ProjectConfig.load(tmp_path / "p")
    assert config.registry_url == "postgresql+psycopg://u@db/reg"
    assert config.resolve(config.offline_store.path) == lake
    memory = ProjectConfig.from_mapping({"project": "shop", "registry": "sqlite:///:memory:"}, root=tmp_path)
    assert memory.registry_url == "sqlite:///:memory:"

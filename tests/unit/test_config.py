"""``featurestore.yaml``: defaults, unknown keys and wrong types rejected by file and key, paths."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from featurestore import ConfigError, Entity, Feature, FeatureView, FileSource, Int64
from featurestore.config import (
    CONFIG_FILE_NAME,
    ONLINE_STORE_KINDS,
    HiveOfflineConfig,
    LocalEngineConfig,
    ParquetOfflineConfig,
    ProjectConfig,
    QualityConfig,
    SparkEngineConfig,
    render_default_config,
)
from featurestore.online import OnlineStore
from featurestore.online.cassandra import CassandraOnlineConfig
from featurestore.online.memory import MemoryOnlineConfig, MemoryOnlineStore
from featurestore.online.redis import RedisOnlineConfig
from featurestore.online.sqlite import SqliteOnlineConfig
from featurestore.schema import view_schema
from featurestore.store import FeatureStore, create_online_store


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


# ---------------------------------------------------------------------- every section's model


def test_the_memory_store_is_configured_by_name(tmp_path: Path) -> None:
    write_config(tmp_path, "project: shop\nonline_store: {type: memory, name: notebook}\n")
    assert ProjectConfig.load(tmp_path).online_store == MemoryOnlineConfig(name="notebook")
    write_config(tmp_path, "project: shop\nonline_store: memory\n")
    assert ProjectConfig.load(tmp_path).online_store == MemoryOnlineConfig(name="default")
    err = load_error(tmp_path, "project: shop\nonline_store: {type: memory, name: [a]}\n")
    assert (err.key, "must be a string, got ['a']" in str(err)) == ("online_store.name", True)


def test_memory_stores_of_one_name_share_their_data_in_the_process(tmp_path: Path) -> None:
    view = FeatureView(
        name="spend",
        entities=(Entity(name="customer", join_keys=("customer_id",), key_types=(Int64,)),),
        source=FileSource(name="events", path="events.parquet", timestamp_field="ts"),
        timestamp_field="ts",
        ttl=timedelta(days=1),
        features=(Feature("total", Int64),),
    )
    name = f"test_config_{uuid.uuid4().hex[:8]}"

    def store(store_name: str) -> OnlineStore:
        config = {"type": "memory", "name": store_name}
        return create_online_store(
            ProjectConfig.from_mapping({"project": "shop", "online_store": config}, root=tmp_path)
        )

    engine, sdk, other = store(name), store(name), store(name + "_other")
    try:
        when = datetime(2024, 3, 1, tzinfo=UTC)
        engine.write(view, pa.Table.from_pylist([{"customer_id": 1, "ts": when, "total": 7}], schema=view_schema(view)))
        keys = pa.table({"customer_id": pa.array([1], pa.int64())})
        assert sdk.read(view, keys, ["total"]).column("total").to_pylist() == [7]
        assert other.read(view, keys, ["total"]).column("total").to_pylist() == [None]
        assert (sdk.count(view), other.count(view)) == (1, 0)
    finally:
        MemoryOnlineStore.discard(name)
        MemoryOnlineStore.discard(name + "_other")
    assert sdk.count(view) == 0


@pytest.mark.parametrize(
    ("section", "typo", "suggestion"),
    [
        ("online_store: {type: sqlite, paht: x.db}", "online_store.paht", "path"),
        ("online_store: {type: redis, key_prefx: p}", "online_store.key_prefx", "key_prefix"),
        ("online_store: {type: redis, cluser: true}", "online_store.cluser", "cluster"),
        ("online_store: {type: cassandra, keyspce: k}", "online_store.keyspce", "keyspace"),
        ("online_store: {type: memory, nam: x}", "online_store.nam", "name"),
        ("offline_store: {type: parquet, pth: lake}", "offline_store.pth", "path"),
        ("offline_store: {type: hive, databse: d}", "offline_store.databse", "database"),
        ("engine: {type: local, master: x}", "engine.master", None),
        ("engine: {type: spark, confs: {a: b}}", "engine.confs", "conf"),
        ("quality: {histogram_bin: 3}", "quality.histogram_bin", "histogram_bins"),
    ],
)
def test_unknown_keys_of_every_section_are_named(
    tmp_path: Path, section: str, typo: str, suggestion: str | None
) -> None:
    err = load_error(tmp_path, f"project: shop\n{section}\n")
    assert err.key == typo
    assert f"key '{typo}': unknown key" in str(err)
    if suggestion:
        assert f"Did you mean '{suggestion}'?" in str(err)
    else:
        assert "Did you mean" not in str(err)
    assert "Known keys: [" in str(err)


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("online_store: {type: memory, name: 5}\n", "online_store.name", "must be a string, got 5"),
        ("online_store: {type: redis, batch_size: 0}\n", "online_store.batch_size", "must be a positive integer"),
        ("online_store: {type: cassandra, consistency: one}\n", "online_store.consistency", "must be one of 'ANY'"),
        ("online_store: {type: cassandra, replication: {dc1: 3}}\n", "online_store.replication", "with a 'class'"),
        ("online_store: {type: cassandra, port: 99999}\n", "online_store.port", "must be at most 65535"),
        ("offline_store: {type: hive, table_type: managd}\n", "offline_store.table_type", "must be one of 'external'"),
        ("offline_store: {path: ''}\n", "offline_store.path", "must be a path"),
        ("engine: {type: spark, conf: {a: [1]}}\n", "engine.conf", "must be a mapping to a string, an integer"),
        ("engine: {type: spark, master: 7}\n", "engine.master", "must be a string, got 7"),
        ("quality: {histogram_bins: 1}\n", "quality.histogram_bins", "must be at least 2"),
        ("quality: {examples: -1}\n", "quality.examples", "must not be negative"),
        ("quality: {psi_threshold: fast}\n", "quality.psi_threshold", "must be a number, got 'fast'"),
    ],
)
def test_wrong_values_of_every_section_are_rejected_naming_the_key(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    err = load_error(tmp_path, "project: shop\n" + text)
    assert err.key == key
    assert words in str(err)


def test_sections_keep_their_attributes(tmp_path: Path) -> None:
    """What callers read: paths as Path, hosts as a tuple, Spark settings as YAML wrote them."""
    write_config(
        tmp_path,
        "project: shop\n"
        "offline_store: {type: hive, path: lake, database: db}\n"
        "online_store: {type: cassandra, hosts: cass1}\n"
        "engine: {type: spark, master: 'local[2]', conf: {spark.ui.enabled: false, spark.sql.shuffle.partitions: 8}}\n",
    )
    config = ProjectConfig.load(tmp_path)
    assert config.offline_store == HiveOfflineConfig(path=Path("lake"), database="db")
    assert isinstance(config.offline_store.path, Path)
    assert isinstance(config.online_store, CassandraOnlineConfig)
    assert config.online_store.hosts == ("cass1",)
    assert config.engine == SparkEngineConfig(
        master="local[2]", conf={"spark.ui.enabled": False, "spark.sql.shuffle.partitions": 8}
    )
    # A project with another section, as the demo makes one (the config itself is a dataclass).
    spark = dataclasses.replace(config, engine=LocalEngineConfig())
    assert (spark.engine, spark.online_store) == (LocalEngineConfig(), config.online_store)


def test_section_models_are_frozen_and_refuse_unknown_keys() -> None:
    online = RedisOnlineConfig()
    with pytest.raises(ValidationError):
        online.url = "redis://elsewhere"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="urll"):
        RedisOnlineConfig(urll="redis://x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        QualityConfig(histogram_bins=1)


@pytest.mark.parametrize("kind", sorted(ONLINE_STORE_KINDS))
def test_every_online_store_kind_has_a_tagged_model_and_a_factory(kind: str) -> None:
    entry = ONLINE_STORE_KINDS[kind]
    model = entry.config_class()
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True
    assert model.model_validate({}).type == kind  # the Literal tag defaults to the kind's name
    with pytest.raises(ValidationError):
        model.model_validate({"type": "not_" + kind})
    assert callable(entry.store_class().from_config)


def test_reading_a_config_imports_no_store_client_library(tmp_path: Path) -> None:
    """Each store's client library loads with its store, never with its settings."""
    write_config(tmp_path, "project: shop\nonline_store: {type: cassandra}\n")
    script = (
        "import sys\n"
        "from featurestore.config import ONLINE_STORE_KINDS, ProjectConfig\n"
        f"ProjectConfig.load({str(tmp_path)!r})\n"
        "for kind in ONLINE_STORE_KINDS.values():\n"
        "    kind.config_class()\n"
        "print(sorted(m for m in ('redis', 'cassandra') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"

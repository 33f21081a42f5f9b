"""What ``featurestore.secrets`` hides, and ``${NAME}`` in ``featurestore.yaml`` (issue 13, item 5).
The integration test ``tests/integration/test_secrets.py`` greps every surface after real
connection errors; these check the rules themselves, without servers."""

from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path

import pytest

from datamart.errors import error_body
from featurestore.config import CONFIG_FILE_NAME, ProjectConfig
from featurestore.errors import ConfigError, RunError, StoreUnavailableError
from featurestore.online.cassandra import CassandraOnlineConfig
from featurestore.online.redis import RedisOnlineConfig
from featurestore.secrets import MASK, RedactingFilter, is_secret_name, redact, redact_url, remember


def secret() -> str:
    return f"Pw-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://app:hunter2@cache:6380/0", "rediss://app:***@cache:6380/0"),
        ("postgresql+psycopg://fs:p@ss:w0rd@db/registry", "postgresql+psycopg://fs:***@db/registry"),
        ("redis://cache:6379/0?password=hunter2&db=1", "redis://cache:6379/0?password=***&db=1"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("postgresql+psycopg://fs@db/registry", "postgresql+psycopg://fs@db/registry"),
        ("http://127.0.0.1:8000/v1/health", "http://127.0.0.1:8000/v1/health"),
    ],
)
def test_url_passwords_are_hidden_whatever_the_scheme(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact(f"Error connecting to {url!r}: refused") == f"Error connecting to {shown!r}: refused"


def test_secret_setting_names() -> None:
    assert all(
        is_secret_name(n) for n in ("password", "token", "api_key", "db_password", "spark.hadoop.fs.s3a.secret.key")
    )
    assert not any(is_secret_name(n) for n in ("key_prefix", "keyspace", "username", "url", "hosts", "tokens_used"))


def test_remembered_values_are_hidden_verbatim_and_url_encoded_but_not_short_ones() -> None:
    value = secret() + "/é"
    remember(value, "ab")
    assert redact(f"driver said: bad password {value}") == f"driver said: bad password {MASK}"
    assert MASK in redact("quoted: " + value.replace("/", "%2F").replace("é", "%C3%A9"))
    assert redact("a tab") == "a tab"  # "ab" is too short to hide in free text


def test_errors_hide_secrets_in_message_and_fields() -> None:
    value = secret()
    remember(value)
    err = StoreUnavailableError("Redis online store", f"redis://u:{value}@cache/0", f"auth failed for {value}")
    for text in (str(err), repr(err), err.address):
        assert value not in text
    assert err.address == "redis://u:***@cache/0"
    assert value not in repr(RunError(f"run failed: postgresql://fs:{value}@db/x"))
    body = error_body(StoreUnavailableError("Registry", "postgresql://fs:x@db/r", "down"))
    assert body["address"] == "postgresql://fs:***@db/r" and "x@db" not in body["message"]


def test_config_models_show_secrets_as_masks_but_the_stores_get_them() -> None:
    value = secret()
    redis = RedisOnlineConfig.model_validate({"url": f"redis://:{value}@cache:6379/0"})
    cassandra = CassandraOnlineConfig.model_validate({"username": "fs", "password": value})
    for text in (repr(redis), str(redis), repr(cassandra), str(cassandra)):
        assert value not in text
    assert "redis://:***@cache:6379/0" in repr(redis)
    assert redis.url == f"redis://:{value}@cache:6379/0"
    assert cassandra.password.get_secret_value() == value


def write_config(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG_FILE_NAME).write_text(text)
    return root


def test_environment_variables_are_substituted_remembered_and_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = secret()
    monkeypatch.setenv("FS_UNIT_PASSWORD", value)
    root = write_config(
        tmp_path,
        "project: p\n"
        "registry: 'postgresql+psycopg://fs:${FS_UNIT_PASSWORD}@db/registry'\n"
        "online_store: {type: cassandra, username: fs, password: '${FS_UNIT_PASSWORD}', keyspace: 'k$${X}'}\n"
        "engine: {type: spark, conf: {spark.a: 'v-${FS_UNIT_PASSWORD}'}}\n",
    )
    config = ProjectConfig.load(root)
    assert config.registry == f"postgresql+psycopg://fs:{value}@db/registry"
    assert isinstance(config.online_store, CassandraOnlineConfig)
    assert config.online_store.password.get_secret_value() == value
    assert config.online_store.keyspace == "k${X}"
    assert config.engine.conf == {"spark.a": f"v-{value}"}  # type: ignore[union-attr]
    assert value not in repr(config) and value not in str(config)
    assert redact(f"connection to {value} refused") == f"connection to {MASK} refused"


def test_a_missing_environment_variable_names_the_file_the_key_and_the_variable(tmp_path: Path) -> None:
    root = write_config(tmp_path, "project: p\nonline_store: {type: redis, url: 'redis://:${FS_UNIT_UNSET_VAR}@c/0'}\n")
    with pytest.raises(ConfigError) as raised:
        ProjectConfig.load(root)
    assert raised.value.file == str(root / CONFIG_FILE_NAME)
    assert raised.value.key == "online_store.url"
    assert "FS_UNIT_UNSET_VAR" in str(raised.value) and "is not set" in str(raised.value)


def test_an_invalid_secret_setting_is_not_echoed(tmp_path: Path) -> None:
    root = write_config(tmp_path, "project: p\nonline_store: {type: cassandra, password: 987654321}\n")
    with pytest.raises(ConfigError) as raised:
        ProjectConfig.load(root)
    assert raised.value.key == "online_store.password"
    assert "987654321" not in str(raised.value)


def test_the_log_filter_hides_secrets_in_messages_and_tracebacks() -> None:
    value = secret()
    remember(value)
    try:
        raise ValueError(f"redis://:{value}@cache/0 refused")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "lookup with %s failed", (value,), sys.exc_info())
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert value not in text and "lookup with *** failed" in text and "redis://:***@cache/0" in text

"""Read a Feast feature repository with Feast's own SDK and print it as one JSON document.

Run by an interpreter that has ``feast`` installed, never imported by the project: Feast pins
its own dependencies (redis<8, pyarrow and pandas ranges...) against ours, so it lives in its
own virtual environment (``infra/feast/install.sh`` makes ``.venv-feast``), and
``featurestore import-feast`` runs this file there as a subprocess::

    .venv-feast/bin/python -I featurestore/feast_reader.py path/to/feature_repo

It imports only ``feast`` and the standard library. What it does is what ``feast plan`` does
before comparing with a registry: load ``feature_store.yaml`` (``load_repo_config``), collect
the repository's objects (``parse_repo``) and let Feast validate them and infer what they leave
out (entity key types, schemas, timestamp fields) with ``FeatureStore.plan`` against an empty
registry in a temporary folder, so neither the repository's registry nor its online store is
touched. Types are Feast value type names (``INT64``, ``FLOAT``, ``UNIX_TIMESTAMP``...).

Exit status 0 and the JSON on stdout; 2 and a one-line message on stderr when the folder is not
a Feast repository or Feast refuses it. Anything the repository's modules print goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

FEATURE_STORE_YAML = "feature_store.yaml"


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def field_spec(field: Any) -> dict[str, Any]:
    dtype = field.dtype
    try:
        value_type = dtype.to_value_type().name
    except Exception:  # a type Feast cannot name as a value type
        value_type = "UNKNOWN"
    return {
        "name": field.name,
        "value_type": value_type,
        "dtype": str(dtype),
        "description": getattr(field, "description", "") or "",
        "tags": dict(getattr(field, "tags", {}) or {}),
    }


def common(obj: Any) -> dict[str, Any]:
    return {
        "name": obj.name,
        "class": type(obj).__name__,
        "description": getattr(obj, "description", "") or "",
        "owner": getattr(obj, "owner", "") or "",
        "tags": dict(getattr(obj, "tags", {}) or {}),
    }


def entity_spec(entity: Any) -> dict[str, Any]:
    return {**common(entity), "join_keys": [entity.join_key], "value_type": entity.value_type.name}


def source_spec(source: Any, repo: Path) -> dict[str, Any]:
    from feast import FileSource, KafkaSource, KinesisSource, PushSource, RequestSource

    out = {
        **common(source),
        "timestamp_field": getattr(source, "timestamp_field", "") or "",
        "created_timestamp_column": getattr(source, "created_timestamp_column", "") or "",
        "field_mapping": dict(getattr(source, "field_mapping", {}) or {}),
        "date_partition_column": getattr(source, "date_partition_column", "") or "",
    }
    if isinstance(source, FileSource):
        path = source.path
        is_uri = "://" in path
        resolved = path if is_uri or os.path.isabs(path) else str((repo / path).resolve())
        fmt = source.file_format
        out.update(
            kind="file",
            path=path,
            resolved_path=resolved,
            uri=is_uri,
            file_format=type(fmt).__name__ if fmt is not None else "",
            s3_endpoint_override=source.s3_endpoint_override or "",
        )
    elif isinstance(source, PushSource):
        out.update(kind="push", batch_source=source.batch_source.name if source.batch_source else "")
    elif isinstance(source, KafkaSource | KinesisSource):
        batch = getattr(source, "batch_source", None)
        out.update(
            kind="kafka" if isinstance(source, KafkaSource) else "kinesis", batch_source=batch.name if batch else ""
        )
    elif isinstance(source, RequestSource):
        out.update(kind="request", schema=[field_spec(f) for f in source.schema])
    else:
        out.update(kind="other")
    return out


def view_spec(view: Any) -> dict[str, Any]:
    batch = view.batch_source
    stream = view.stream_source
    return {
        **common(view),
        "entities": [e for e in view.entities if e != "__dummy"],
        "entity_columns": [field_spec(f) for f in view.entity_columns],
        "features": [field_spec(f) for f in view.features],
        "ttl_seconds": seconds(view.ttl),
        "online": bool(view.online),
        "offline": bool(getattr(view, "offline", False)),
        "batch_source": batch.name if batch is not None else "",
        "stream_source": stream.name if stream is not None else "",
        "udf": bool(getattr(view, "udf", None)),
        "aggregations": len(getattr(view, "aggregations", None) or []),
    }


def on_demand_spec(view: Any) -> dict[str, Any]:
    sources = [p.name for p in view.source_feature_view_projections.values()]
    requests = list(view.source_request_sources)
    return {
        **common(view),
        "mode": getattr(view, "mode", ""),
        "features": [field_spec(f) for f in view.features],
        "sources": sources + requests,
        "write_to_online_store": bool(getattr(view, "write_to_online_store", False)),
    }


def service_spec(service: Any) -> dict[str, Any]:
    return {
        **common(service),
        "projections": [
            {
                "view": p.name,
                "alias": p.name_alias or "",
                "features": [f.name for f in p.features] or list(p.desired_features),
                "join_key_map": dict(p.join_key_map or {}),
            }
            for p in service.feature_view_projections
        ],
        "logging": service.logging_config is not None,
    }


def config_spec(config: Any) -> dict[str, Any]:
    def dump(settings: Any) -> dict[str, Any]:
        if isinstance(settings, dict):
            return dict(settings)
        if hasattr(settings, "model_dump"):
            return dict(settings.model_dump(mode="json"))
        return {"type": str(settings)}

    online = dump(config.online_store) if config.online_store is not None else {"type": "none"}
    online.setdefault("type", "sqlite")
    offline = dump(config.offline_store)
    registry = config.registry
    return {
        "project": config.project,
        "provider": config.provider,
        "online_store": online,
        "online_store_class": type(config.online_store).__name__,
        "offline_store": offline,
        "registry": {
            "registry_type": getattr(registry, "registry_type", ""),
            "path": str(getattr(registry, "path", "")),
        },
        "entity_key_serialization_version": getattr(config, "entity_key_serialization_version", None),
    }


def read_repository(repo: Path) -> dict[str, Any]:
    import feast
    from feast.feature_store import FeatureStore
    from feast.repo_config import RepoConfig, load_repo_config
    from feast.repo_operations import parse_repo

    config = load_repo_config(repo, repo / FEATURE_STORE_YAML)
    described = config_spec(config)
    # parse_repo imports every module of the repository by its path relative to the working
    # folder, as `feast plan` does after changing into the repository.
    os.chdir(repo)
    sys.path.insert(0, str(repo))
    sys.dont_write_bytecode = True
    contents = parse_repo(repo)
    inference_error = ""
    with tempfile.TemporaryDirectory(prefix="featurestore-feast-reader-") as tmp:
        # plan() validates and infers (entity key types, schemas) the way `feast apply` would,
        # and records nothing: an empty registry and an online store of our own, in a temporary
        # folder, so that the repository's registry and online store are left as they are.
        scratch = RepoConfig(
            project=config.project,
            provider=config.provider,
            registry={"registry_type": "file", "path": str(Path(tmp) / "registry.db")},
            online_store={"type": "sqlite", "path": str(Path(tmp) / "online.db")},
            offline_store=described["offline_store"],
            entity_key_serialization_version=config.entity_key_serialization_version,
            repo_path=repo,
        )
        try:
            FeatureStore(config=scratch).plan(contents)
        except Exception as err:  # the objects are still read; the importer reports what is missing
            inference_error = f"{type(err).__name__}: {err}"
    return {
        "feast_version": feast.__version__,
        "repository": str(repo),
        "inference_error": inference_error,
        "config": described,
        "projects": [p.name for p in contents.projects],
        "entities": [entity_spec(e) for e in contents.entities if e.name != "__dummy"],
        "data_sources": [source_spec(s, repo) for s in contents.data_sources],
        "feature_views": [view_spec(v) for v in contents.feature_views],
        "stream_feature_views": [view_spec(v) for v in contents.stream_feature_views],
        "on_demand_feature_views": [on_demand_spec(v) for v in contents.on_demand_feature_views],
        "label_views": [common(v) for v in contents.label_views],
        "feature_services": [service_spec(s) for s in contents.feature_services],
        "permissions": [common(p) for p in contents.permissions],
    }


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        fail("usage: feast_reader.py FEAST_REPOSITORY")
    repo = Path(argv[0]).resolve()
    if not repo.is_dir():
        fail(f"'{argv[0]}' is not a folder: give the folder of a Feast feature repository")
    if not (repo / FEATURE_STORE_YAML).is_file():
        fail(f"'{repo}' holds no {FEATURE_STORE_YAML}: it is not a Feast feature repository")
    try:
        import feast  # noqa: F401
    except ImportError:
        fail(f"feast is not installed in {sys.executable}: run infra/feast/install.sh, or pip install feast")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            document = read_repository(repo)
    except SystemExit:
        raise
    except Exception as err:  # Feast's own refusal, worded by Feast: shown as it is
        fail(f"Feast could not read '{repo}': {type(err).__name__}: {err}")
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])

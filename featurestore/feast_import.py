"""``featurestore import-feast``: a Feast feature repository as a project of this store.

Two steps in two interpreters. Feast pins its own dependencies against ours (redis<8 among
them), so Feast's SDK never runs in this process: :func:`read_feast_repository` runs
``feast_reader.py`` with a Python that has ``feast`` (its own virtual environment, made by
``infra/feast/install.sh``), which prints the repository as JSON. :func:`convert` maps that JSON
to this store's definitions and writes nothing; :func:`write_project` writes ``featurestore.yaml``,
``features.py`` and ``IMPORT_REPORT.md``.

Every name is kept (entities, views, features, services), so that references such as
``driver_hourly_stats:conv_rate`` stay valid. What behaves differently here, and what has no
equivalent, is listed in the report with what to do about it: nothing is dropped silently.
"""

from __future__ import annotations

import importlib.util
import json
import keyword
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from featurestore.config import CONFIG_FILE_NAME
from featurestore.definitions import NAME_PATTERN
from featurestore.errors import FeatureStoreError

FEAST_CONFIG_FILE = "feature_store.yaml"
FEAST_PYTHON_ENV = "FEATURESTORE_FEAST_PYTHON"
READER = Path(__file__).with_name("feast_reader.py")
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
FEATURES_FILE = "features.py"
REPORT_FILE = "IMPORT_REPORT.md"
READER_TIMEOUT_SECONDS = 900.0

# Feast value type names -> ours. Widened types are reported (see _feature_type).
KEY_TYPES = {"INT64": "Int64", "INT32": "Int64", "STRING": "String"}
FEATURE_TYPES = {
    "INT64": "Int64",
    "INT32": "Int64",
    "DOUBLE": "Float64",
    "FLOAT": "Float64",
    "STRING": "String",
    "JSON": "String",
    "BOOL": "Bool",
    "UNIX_TIMESTAMP": "Timestamp",
}
WIDENED = {
    "INT32": "Int32 widened to Int64",
    "FLOAT": "Float32 widened to Float64 (values read from the file are the same floats, shown with float64 digits)",
    "JSON": "Json kept as its text (String): parse it where it is used",
}
NO_EXPIRY_DAYS = 36500


class FeastImportError(FeatureStoreError):
    """The Feast repository cannot be read or the project cannot be written: says what to do."""


# ---------------------------------------------------------------------------- reading


def feast_python(explicit: str | None = None) -> list[str]:
    """The command that runs a Python with ``feast``: ``--feast-python``, else
    ``$FEATURESTORE_FEAST_PYTHON``, else this interpreter when it has ``feast``, else
    ``.venv-feast/bin/python`` at the repository root, else an error saying how to get one."""
    for given, where in ((explicit, "--feast-python"), (os.environ.get(FEAST_PYTHON_ENV), FEAST_PYTHON_ENV)):
        if given:
            if not Path(given).is_file():
                raise FeastImportError(
                    f"{where} names '{given}', which is not a file: give the python of an environment "
                    "with feast installed (infra/feast/install.sh makes .venv-feast/bin/python)"
                )
            return [given]
    if importlib.util.find_spec("feast") is not None:
        return [sys.executable]
    default = REPOSITORY_ROOT / ".venv-feast" / "bin" / "python"
    if default.is_file():
        return [str(default)]
    raise FeastImportError(
        "No Python with feast found: run infra/feast/install.sh (it makes .venv-feast), or pip install feast "
        f"in another virtual environment and pass its python with --feast-python (or set {FEAST_PYTHON_ENV}). "
        "Feast is not installed in this environment because it pins versions against the store's."
    )


def check_feast_repository(path: Path) -> Path:
    """``path`` resolved, if it is a Feast repository (a folder with ``feature_store.yaml``)."""
    if not path.exists():
        raise FeastImportError(f"'{path}' does not exist: give the folder of a Feast feature repository")
    if not path.is_dir():
        raise FeastImportError(f"'{path}' is not a folder: give the folder of a Feast feature repository")
    if not (path / FEAST_CONFIG_FILE).is_file():
        nested = sorted(p.parent for p in path.glob(f"*/{FEAST_CONFIG_FILE}"))
        hint = f" Did you mean '{nested[0]}'?" if nested else ""
        raise FeastImportError(
            f"'{path}' holds no {FEAST_CONFIG_FILE}, so it is not a Feast feature repository: give the folder "
            f"that holds it (feast init puts it in NAME/feature_repo).{hint}"
        )
    return path.resolve()


def read_feast_repository(path: Path, python: Sequence[str]) -> dict[str, Any]:
    """The repository as ``feast_reader.py`` prints it, read by Feast's SDK in ``python``."""
    repo = check_feast_repository(path)
    command = [*python, "-I", str(READER), str(repo)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=READER_TIMEOUT_SECONDS, check=False)
    except OSError as err:
        raise FeastImportError(f"Could not start {python[0]} to read the Feast repository: {err}") from err
    except subprocess.TimeoutExpired as err:
        raise FeastImportError(
            f"Feast took over {READER_TIMEOUT_SECONDS:.0f} s to read '{repo}' (command: {' '.join(command)})"
        ) from err
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {done.returncode}"
        raise FeastImportError(f"Reading the Feast repository with {python[0]} failed: {detail}")
    try:
        document: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        raise FeastImportError(f"{READER.name} printed no JSON document: {err}: {done.stdout[:200]!r}") from err
    return document


# ---------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Unsupported:
    """An object of the Feast repository with no equivalent here, and what to do about it."""

    kind: str
    name: str
    why: str
    todo: str


@dataclass
class ImportReport:
    """What the import did: what was imported, what behaves differently, what was left out."""

    feast_version: str = ""
    repository: str = ""
    imported: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)

    def leave_out(self, kind: str, name: str, why: str, todo: str) -> None:
        self.unsupported.append(Unsupported(kind, name, why, todo))

    def markdown(self) -> str:
        lines = [
            "# Import of a Feast repository",
            "",
            f"Read from `{self.repository}` with Feast {self.feast_version}'s SDK "
            "(in its own Python environment), by `featurestore import-feast`.",
            "",
            "## Imported",
            "",
            *(f"- {item}" for item in self.imported or ["nothing"]),
            "",
            "## Mapped with a change in behaviour",
            "",
            *(f"- {item}" for item in self.changed or ["none"]),
            "",
            "## No equivalent: not imported",
            "",
        ]
        if not self.unsupported:
            lines.append("- none")
        for u in self.unsupported:
            lines.append(f"- {u.kind} `{u.name}`: {u.why}. What to do: {u.todo}.")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FeastImport:
    """The files of the imported project (not yet written) and the report."""

    project: str
    config: str
    features: str
    report: ImportReport


# ---------------------------------------------------------------------------- mapping


def _tags(tags: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(f"{k}:{v}" if v else k for k, v in tags.items())


def _ident(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


class _Names:
    """Python variable names of the generated file: the object's name where it is free."""

    def __init__(self) -> None:
        self.used: set[str] = set(dir(__builtins__)) | {"timedelta", "featurestore"}

    def take(self, name: str, kind: str) -> str:
        base = re.sub(r"\W", "_", name)
        if not base or base[0].isdigit():
            base = f"{kind}_{base}"
        candidate = base
        if candidate in self.used or keyword.iskeyword(candidate):
            candidate = f"{base}_{kind}"
        n = 2
        while candidate in self.used or keyword.iskeyword(candidate):
            candidate = f"{base}_{kind}_{n}"
            n += 1
        self.used.add(candidate)
        return candidate


def _source_name(name: str, taken: set[str]) -> str:
    """``name`` when it is a valid source name here, else an identifier made from it (Feast names
    a source by its path when it has no name: ``data/driver_stats.parquet``), not one of ``taken``."""
    if NAME_PATTERN.match(name) and name not in taken:
        return name
    if "/" in name or "." in name:  # a path: its file's name
        name = PurePath(name.rstrip("/")).stem
    base = re.sub(r"\W+", "_", name).strip("_").lstrip("0123456789_") or "source"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    return candidate


def _call(function: str, args: Sequence[tuple[str, str]]) -> str:
    inner = "".join(f"    {k}={v},\n" for k, v in args)
    return f"{function}(\n{inner})"


def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _tuple(items: Sequence[str]) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _metadata(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    if spec.get("description"):
        out.append(("description", _s(spec["description"])))
    if spec.get("owner"):
        out.append(("owner", _s(spec["owner"])))
    if spec.get("tags"):
        out.append(("tags", _tuple([_s(t) for t in _tags(spec["tags"])])))
    return out


def _ttl(seconds: float) -> str:
    whole = int(seconds)
    if whole % 86400 == 0:
        return f"timedelta(days={whole // 86400})"
    if whole % 3600 == 0:
        return f"timedelta(hours={whole // 3600})"
    return f"timedelta(seconds={seconds:g})"


def _redis_url(settings: Mapping[str, Any], report: ImportReport) -> tuple[str, bool]:
    """Feast's ``host:port,db=0,password=...,ssl=true`` as a ``redis://`` URL (a password
    becomes ``${REDIS_PASSWORD}``, never written into the file) and whether it is a cluster."""
    parts = [p.strip() for p in str(settings.get("connection_string", "localhost:6379")).split(",") if p.strip()]
    hosts = [p for p in parts if "=" not in p]
    params = dict(p.split("=", 1) for p in parts if "=" in p)
    host = hosts[0] if hosts else "localhost:6379"
    if ":" not in host:
        host += ":6379"
    cluster = str(settings.get("redis_type", "redis")).endswith("redis_cluster")
    if str(settings.get("redis_type", "")).endswith("sentinel"):
        report.changed.append(
            "Feast's Redis Sentinel setting has no equivalent: featurestore.yaml points at the first address of "
            f"its connection string ({host}); give the master's address in online_store.url"
        )
    if len(hosts) > 1:
        report.changed.append(
            f"Feast's Redis connection string lists {len(hosts)} addresses; online_store.url keeps the first "
            f"({host}){', a startup node of the cluster' if cluster else ''}"
        )
    user = params.get("username", "")
    auth = ""
    if params.get("password"):
        auth = f"{quote(user)}:${{REDIS_PASSWORD}}@"
        report.changed.append(
            "The Redis password is not written into featurestore.yaml: the URL reads it from the environment "
            "variable REDIS_PASSWORD, to be set where the store runs"
        )
    elif user:
        auth = f"{quote(user)}@"
    scheme = "rediss" if params.get("ssl", "").lower() in ("true", "1", "yes") else "redis"
    db = params.get("db", "0")
    return f"{scheme}://{auth}{host}/{db}", cluster


def _online_store(config: Mapping[str, Any], project: str, report: ImportReport) -> list[str]:
    settings: Mapping[str, Any] = config.get("online_store") or {}
    kind = str(settings.get("type", "sqlite"))
    embedded = ["online_store:", "  type: sqlite", "  path: data/online.db"]
    if kind == "sqlite":
        report.imported.append("online store: Feast's SQLite store -> the embedded SQLite store (data/online.db)")
        report.changed.append(
            "The online store is a new SQLite file, data/online.db in this project; Feast's "
            f"({settings.get('path', 'data/online_store.db')} in the Feast repository) is left as it is: "
            "`featurestore run` fills the new one"
        )
        return embedded
    if kind == "redis":
        url, cluster = _redis_url(settings, report)
        report.imported.append(f"online store: Feast's Redis -> Redis at {url}{' (cluster)' if cluster else ''}")
        report.changed.append(
            f"Redis keys are this store's own, prefixed by the project name '{project}': Feast's keys on the same "
            "server are left alone, and `featurestore run` writes the values again"
        )
        if settings.get("key_ttl_seconds"):
            report.changed.append(
                f"Feast's key_ttl_seconds ({settings['key_ttl_seconds']}) is not kept: keys do not expire here; "
                "each view's ttl decides at lookup whether a value is still valid"
            )
        lines = ["online_store:", "  type: redis", f"  url: {_s(url)}"]
        if cluster:
            lines.append("  cluster: true")
        return lines
    if kind == "cassandra":
        lines = ["online_store:", "  type: cassandra"]
        hosts = settings.get("hosts") or ["127.0.0.1"]
        lines.append("  hosts: [" + ", ".join(_s(h) for h in hosts) + "]")
        if settings.get("port"):
            lines.append(f"  port: {int(settings['port'])}")
        keyspace = settings.get("keyspace") or "feast_keyspace"
        lines.append(f"  keyspace: {_s(keyspace)}")
        local_dc = (settings.get("load_balancing") or {}).get("local_dc")
        if local_dc:
            lines.append(f"  local_dc: {_s(local_dc)}")
        if settings.get("username"):
            lines.append(f"  username: {_s(settings['username'])}")
        if settings.get("password"):
            lines.append("  password: ${CASSANDRA_PASSWORD}")
            report.changed.append(
                "The Cassandra password is not written into featurestore.yaml: it is read from the environment "
                "variable CASSANDRA_PASSWORD, to be set where the store runs"
            )
        if settings.get("request_timeout"):
            lines.append(f"  request_timeout: {float(settings['request_timeout'])}")
        report.imported.append(
            f"online store: Feast's Cassandra -> Cassandra at {', '.join(hosts)}, keyspace {keyspace}"
        )
        report.changed.append(
            f"Tables in keyspace '{keyspace}' are this store's own (one per view): `featurestore run` fills them; "
            "Feast's tables are left alone"
        )
        for key in ("secure_bundle_path", "datacenters", "routing"):
            if settings.get(key):
                report.leave_out(
                    "Cassandra setting",
                    key,
                    "the store connects to hosts and a port, with one local data center",
                    "give hosts, port and local_dc in featurestore.yaml's online_store",
                )
        return lines
    report.leave_out(
        "online store",
        kind,
        f"this store has no '{kind}' online store (it has Redis, Cassandra and embedded SQLite)",
        "featurestore.yaml uses the embedded SQLite store; change online_store to Redis or Cassandra for "
        "production, then `featurestore run --all`",
    )
    return embedded


def _config_text(document: Mapping[str, Any], project: str, report: ImportReport) -> str:
    config: Mapping[str, Any] = document.get("config") or {}
    provider = str(config.get("provider", "local"))
    if provider not in ("local",):
        builtin = provider in ("gcp", "aws", "azure")
        report.leave_out(
            "provider",
            provider,
            f"Feast's {'cloud' if builtin else 'custom'} provider has no equivalent: this store reads files and "
            "computes with its local or Spark engine",
            "the project uses the local engine; set engine in featurestore.yaml (local or spark)"
            + ("" if builtin else "; port what the custom provider does into the views' transformations"),
        )
    offline = str((config.get("offline_store") or {}).get("type", "file"))
    if offline not in ("file", "dask", "duckdb"):
        report.leave_out(
            "offline store",
            offline,
            "this store's offline store is Parquet files (or Hive tables), written by its runs",
            "export the sources to Parquet files and point the FileSources of features.py at them",
        )
    report.changed.append(
        "Offline: Feast reads the sources at query time; here `featurestore run` computes each view and "
        "publishes its rows to the offline store (data/offline), which training sets and lookups read"
    )
    report.changed.append(
        "Training sets: FeatureStore.get_training_set(spine, features) stands for get_historical_features(entity_df, "
        "features), with the spine's time in event_timestamp by default as in Feast; a value counts for ttl after "
        "its event time as in Feast, but every spine row is kept, in the spine's order (Feast drops the rows whose "
        "entity has no earlier value, and reorders)"
    )
    lines = [
        f"# Imported from the Feast repository {document.get('repository', '')} by featurestore import-feast",
        "# (see IMPORT_REPORT.md). Paths are relative to this folder.",
        f"project: {project}",
        f"definitions: [{FEATURES_FILE}]",
        "registry: sqlite:///data/registry.db",
        "offline_store:",
        "  type: parquet",
        "  path: data/offline",
        *_online_store(config, project, report),
        "engine: local",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class _Source:
    name: str
    var: str
    spec: Mapping[str, Any]


def convert(document: Mapping[str, Any]) -> FeastImport:
    """Map the reader's JSON to the text of ``featurestore.yaml`` and ``features.py``, and the report."""
    report = ImportReport(
        feast_version=str(document.get("feast_version", "")), repository=str(document.get("repository", ""))
    )
    config = document.get("config") or {}
    project = str(config.get("project") or "feast_import")
    if not NAME_PATTERN.match(project):
        raise FeastImportError(
            f"Feast project name '{project}' is not a valid project name here: use letters, digits and "
            "underscores, starting with a letter (rename it in feature_store.yaml, or edit the imported project)"
        )
    if document.get("inference_error"):
        report.changed.append(
            f"Feast could not infer the missing parts of the definitions ({document['inference_error']}): "
            "types Feast would have read from the data are missing, and objects needing them are listed below"
        )
    config_text = _config_text(document, project, report)
    names = _Names()
    blocks: list[str] = []
    used_types: set[str] = set()

    # Entities: key types from the entity, else from the views' entity columns (Feast infers them).
    key_types: dict[str, str] = {}
    for view in document.get("feature_views", []) + document.get("stream_feature_views", []):
        for column in view.get("entity_columns", []):
            key_types.setdefault(column["name"], column["value_type"])
    entities: dict[str, str] = {}
    entity_keys = {e["name"]: list(e.get("join_keys") or []) for e in document.get("entities", [])}
    for e in document.get("entities", []):
        problems = [] if NAME_PATTERN.match(e["name"]) else [f"its name is not valid here ({NAME_PATTERN.pattern})"]
        types = []
        for key in e["join_keys"]:
            value_type = e["value_type"] if e["value_type"] not in ("UNKNOWN", "INVALID") else key_types.get(key, "")
            if value_type not in KEY_TYPES:
                problems.append(f"join key '{key}' has type {value_type or 'unknown'} (keys here are Int64 or String)")
            else:
                types.append(KEY_TYPES[value_type])
                if value_type == "INT32":
                    report.changed.append(f"Entity '{e['name']}': join key '{key}' Int32 widened to Int64")
        if problems:
            report.leave_out(
                "entity",
                e["name"],
                "; ".join(problems),
                "give the entity a join key of type Int64 or String (e.g. a column cast in the view's transformation)",
            )
            continue
        var = names.take(e["name"], "entity")
        entities[e["name"]] = var
        used_types.update(types)
        args = [
            ("name", _s(e["name"])),
            ("join_keys", _tuple([_s(k) for k in e["join_keys"]])),
            ("key_types", _tuple(types)),
            *_metadata(e),
        ]
        blocks.append(f"{var} = {_call('Entity', args)}")
        report.imported.append(f"entity `{e['name']}` (join keys {', '.join(e['join_keys'])})")

    # Sources: Feast's file sources; push, stream, request and other sources are reported.
    all_sources = {s["name"]: s for s in document.get("data_sources", [])}
    sources: dict[str, _Source] = {}
    for s in document.get("data_sources", []):
        kind = s.get("kind")
        if kind == "file":
            fmt = s.get("file_format") or "ParquetFormat"
            if s.get("uri"):
                report.leave_out(
                    "file source",
                    s["name"],
                    f"its path {s['path']} is a URI; this store reads local (or mounted) files",
                    "copy or mount the files locally and set the FileSource's path in features.py",
                )
                continue
            if fmt != "ParquetFormat":
                report.leave_out(
                    "file source",
                    s["name"],
                    f"its format {fmt} is not read here (Parquet and CSV are)",
                    "export the table to Parquet and add a FileSource for it",
                )
                continue
            our_name = _source_name(s["name"], {x.name for x in sources.values()})
            if our_name != s["name"]:
                report.changed.append(f"Source '{s['name']}' is named '{our_name}' (source names here are identifiers)")
            var = names.take(our_name, "source")
            sources[s["name"]] = _Source(our_name, var, s)
            args = [
                ("name", _s(our_name)),
                ("path", _s(s["resolved_path"])),
                ("timestamp_field", _s(s["timestamp_field"])),
                ("file_format", _s("parquet")),
                *_metadata(s),
            ]
            blocks.append(f"{var} = {_call('FileSource', args)}")
            report.imported.append(f"file source `{s['name']}` ({s['resolved_path']})")
            if s["path"] != s["resolved_path"]:
                report.changed.append(
                    f"Source '{s['name']}': its relative path {s['path']} is written as {s['resolved_path']}, "
                    "so that this project reads the same file"
                )
            if s.get("date_partition_column"):
                report.changed.append(
                    f"Source '{s['name']}': date_partition_column '{s['date_partition_column']}' is not used "
                    "to prune files here; runs read the file and filter on the timestamp field"
                )
        elif kind == "push":
            report.leave_out(
                "push source",
                s["name"],
                "pushes are not a source here: a view takes pushed rows directly",
                f"views reading it were imported from its batch source '{s.get('batch_source', '')}'; push rows to "
                "them with POST /v1/push/VIEW or `featurestore push VIEW FILE`",
            )
        elif kind in ("kafka", "kinesis"):
            report.leave_out(
                "stream source",
                s["name"],
                f"this store reads no {kind} stream",
                "have the stream's consumer push rows with POST /v1/push/VIEW; views reading it were imported "
                f"from its batch source '{s.get('batch_source', '')}' where it has one",
            )
        elif kind == "request":
            report.leave_out(
                "request source",
                s["name"],
                "request-time data is not part of a lookup here",
                "compute features from request data in the service that calls the store",
            )
        else:
            report.leave_out(
                "data source",
                s["name"],
                f"{s.get('class', 'this source')} is not read here (file sources are)",
                "export the table to Parquet and add a FileSource for it in features.py",
            )

    # Feature views.
    views: dict[str, tuple[str, list[str]]] = {}
    for v in document.get("feature_views", []):
        converted = _feature_view(v, entities, entity_keys, sources, all_sources, names, report, used_types)
        if converted is not None:
            var, text, features = converted
            views[v["name"]] = (var, features)
            blocks.append(f"{var} = {text}")
    for v in document.get("stream_feature_views", []):
        report.leave_out(
            "stream feature view",
            v["name"],
            "views computed from a stream have no equivalent",
            f"define a FeatureView on its batch source '{v.get('batch_source', '')}' and push the stream's rows to "
            "it with POST /v1/push/VIEW",
        )
    for v in document.get("on_demand_feature_views", []):
        report.leave_out(
            "on-demand feature view",
            v["name"],
            f"its {v.get('mode', 'python')} function runs at request time in Feast; this store serves stored values",
            "compute it in the consuming service from the looked-up features, or, when it uses no request "
            "data, as a FeatureView with a SQL or pandas transformation over its sources ("
            + ", ".join(v.get("sources", []))
            + ")",
        )
    for v in document.get("label_views", []):
        report.leave_out(
            "label view",
            v["name"],
            "labels edited by people have no equivalent",
            "keep labels in a file and join them to training sets as the spine's columns",
        )
    for p in document.get("permissions", []):
        report.leave_out(
            "permission",
            p["name"],
            "Feast's permissions are not imported",
            "give users roles and tokens here (`featurestore tokens`, auth in featurestore.yaml)",
        )

    # Feature services.
    for s in document.get("feature_services", []):
        service = _feature_service(s, views, report)
        if service is not None:
            blocks.append(f"{names.take(s['name'], 'service')} = {service}")

    header = (
        f'"""Definitions imported from the Feast repository {report.repository} (Feast {report.feast_version}).\n\n'
        f"Written by `featurestore import-feast`; {REPORT_FILE} lists what changed in behaviour and what was\n"
        'not imported."""\n\n'
    )
    imports = sorted({"Entity", "FeatureService", "FeatureView", "FileSource", "Feature", *used_types})
    needs_timedelta = any("timedelta(" in b for b in blocks)
    # One name a line with a trailing comma: isort keeps it so at any line length.
    features_text = (
        header
        + ("from datetime import timedelta\n\n" if needs_timedelta else "")
        + "from featurestore import (\n"
        + "".join(f"    {name},\n" for name in imports)
        + ")\n\n"
        + "\n\n".join(blocks)
        + "\n"
    )
    return FeastImport(project=project, config=config_text, features=features_text, report=report)


def _feature_view(
    v: Mapping[str, Any],
    entities: Mapping[str, str],
    entity_keys: Mapping[str, Sequence[str]],
    sources: Mapping[str, _Source],
    all_sources: Mapping[str, Mapping[str, Any]],
    names: _Names,
    report: ImportReport,
    used_types: set[str],
) -> tuple[str, str, list[str]] | None:
    name = v["name"]
    if v.get("udf") or v.get("aggregations"):
        report.leave_out(
            "batch feature view",
            name,
            "its Python UDF or aggregations run in Feast's compute engine",
            "write the same computation as the view's SQL or pandas transformation",
        )
        return None
    if not NAME_PATTERN.match(name):
        report.leave_out("feature view", name, "its name is not valid here", "rename it in Feast, then import again")
        return None
    missing = [e for e in v["entities"] if e not in entities]
    if not v["entities"] or missing:
        why = "it has no entity" if not v["entities"] else f"its entities {missing} were not imported"
        report.leave_out("feature view", name, why, "give it an entity with an Int64 or String join key")
        return None
    source = sources.get(v.get("batch_source", ""))
    if source is None:
        report.leave_out(
            "feature view",
            name,
            f"its batch source '{v.get('batch_source') or '(none)'}' was not imported",
            "give it a Parquet or CSV FileSource",
        )
        return None
    # The key columns (Feast's created timestamp dedupes per key and event time): the view's entity
    # columns, else its entities' join keys. Feast leaves the entity columns empty when its inference
    # failed and the schema omits the keys (as its template's does); without keys the dedupe would
    # keep one row per event time across all entities.
    keys = [c["name"] for c in v.get("entity_columns", [])]
    if not keys:
        keys = [k for e in v["entities"] for k in entity_keys.get(e, [])]
        if not keys:
            report.leave_out(
                "feature view",
                name,
                "neither its schema nor its entities name a join key column",
                "give its entities join keys (or add the key columns to the view's schema in Feast), then import again",
            )
            return None
    stream = v.get("stream_source")
    if stream:
        kind = all_sources.get(stream, {}).get("kind", "stream")
        report.changed.append(
            f"Feature view '{name}' reads its batch source '{source.spec['name']}'; Feast's {kind} source "
            f"'{stream}' is replaced by POST /v1/push/{name}"
        )
    features: list[str] = []
    feature_lines: list[str] = []
    for f in v["features"]:
        value_type = f["value_type"]
        if value_type not in FEATURE_TYPES or not NAME_PATTERN.match(f["name"]):
            why = f"type {f['dtype']}" if value_type not in FEATURE_TYPES else "a name that is not valid here"
            report.leave_out(
                "feature",
                f"{name}:{f['name']}",
                f"{why} has no equivalent (features here are Int64, Float64, String, Bool or Timestamp)",
                "flatten it into columns of those types in a transformation, or store it as JSON text (String)",
            )
            continue
        our_type = FEATURE_TYPES[value_type]
        used_types.add(our_type)
        if value_type in WIDENED:
            report.changed.append(f"Feature '{name}:{f['name']}': {WIDENED[value_type]}")
        extra = _metadata(f)
        rest = "".join(f", {k}={val}" for k, val in extra)
        feature_lines.append(f"Feature({_s(f['name'])}, {our_type}{rest})")
        features.append(f["name"])
    if not features:
        report.leave_out("feature view", name, "none of its features has an equivalent type", "see its features above")
        return None
    ttl_seconds = v.get("ttl_seconds") or 0
    if ttl_seconds <= 0:
        report.changed.append(
            f"Feature view '{name}': Feast's ttl 0 (values never expire) is a ttl of {NO_EXPIRY_DAYS} days here"
        )
        ttl_seconds = NO_EXPIRY_DAYS * 86400
    else:
        report.changed.append(
            f"Feature view '{name}': ttl {timedelta(seconds=ttl_seconds)} applies online too: a "
            "lookup returns no value older than the ttl (Feast returns whatever was materialized)"
        )
    spec = source.spec
    timestamp = spec.get("timestamp_field") or "event_timestamp"
    args: list[tuple[str, str]] = [
        ("name", _s(name)),
        ("entities", _tuple([entities[e] for e in v["entities"]])),
        ("source", source.var),
        ("timestamp_field", _s(timestamp)),
        ("ttl", _ttl(ttl_seconds)),
    ]
    transformation = _transformation(source, keys, timestamp, name, report)
    if transformation:
        args.append(("transformation", transformation))
    args.append(("features", "(\n        " + ",\n        ".join(feature_lines) + ",\n    )"))
    if not v.get("online", True):
        args.append(("online", "False"))
    args.extend(_metadata(v))
    var = names.take(name, "view")
    report.imported.append(f"feature view `{name}` ({len(features)} of {len(v['features'])} features)")
    return var, _call("FeatureView", args), features


def _transformation(source: _Source, keys: Sequence[str], timestamp: str, view: str, report: ImportReport) -> str:
    """SQL doing what Feast does when reading the source: its field mapping (renames) and its
    created timestamp (of rows with the same keys and event time, the newest created one)."""
    spec = source.spec
    mapping: Mapping[str, str] = spec.get("field_mapping") or {}
    created = spec.get("created_timestamp_column") or ""
    if not mapping and not created:
        return ""
    select = "*"
    if mapping:
        select = "* RENAME (" + ", ".join(f"{_ident(a)} AS {_ident(b)}" for a, b in mapping.items()) + ")"
        report.changed.append(f"Feature view '{view}': Feast's field mapping of '{spec['name']}' is a SQL RENAME")
    sql = f"SELECT {select} FROM {_ident(source.name)}"
    if created:
        partition = ", ".join(_ident(c) for c in [*keys, timestamp])
        sql += f" QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {_ident(created)} DESC NULLS LAST) = 1"
        report.changed.append(
            f"Feature view '{view}': Feast's created_timestamp_column '{created}' is a SQL transformation keeping, "
            "of rows with the same keys and event time, the one created last (as Feast does)"
        )
    return _s(sql)


def _feature_service(
    s: Mapping[str, Any], views: Mapping[str, tuple[str, list[str]]], report: ImportReport
) -> str | None:
    name = s["name"]
    if not NAME_PATTERN.match(name):
        report.leave_out("feature service", name, "its name is not valid here", "rename it in Feast, then import again")
        return None
    items: list[str] = []
    for p in s.get("projections", []):
        view = p["view"]
        if view not in views:
            report.leave_out(
                "feature service item",
                f"{name}/{view}",
                f"view '{view}' was not imported (see above)",
                f"add its features to '{name}' once the view exists here",
            )
            continue
        var, available = views[view]
        wanted = p.get("features") or available
        kept = [f for f in wanted if f in available]
        for f in wanted:
            if f not in available:
                report.leave_out(
                    "feature service item",
                    f"{name}/{view}:{f}",
                    "the feature was not imported",
                    "see the feature above",
                )
        if p.get("alias"):
            report.changed.append(
                f"Feature service '{name}': Feast's alias '{p['alias']}' of view '{view}' is not kept; its features "
                f"are named {view}:FEATURE"
            )
        if p.get("join_key_map"):
            report.leave_out(
                "join key mapping",
                f"{name}/{view}",
                "a service here looks up a view by the view's own join keys",
                "rename the key columns in the request, or define a view whose entity has the mapped keys",
            )
        if not kept:
            continue
        items.append(var if kept == available else f"{var}.select({', '.join(_s(f) for f in kept)})")
    if s.get("logging"):
        report.changed.append(
            f"Feature service '{name}': Feast's feature logging is not imported (the datamart records usage and metrics)"
        )
    if not items:
        report.leave_out("feature service", name, "none of its features was imported", "see its views above")
        return None
    report.imported.append(f"feature service `{name}`")
    args = [("name", _s(name)), ("features", _tuple(items)), *_metadata(s)]
    return _call("FeatureService", args)


# ---------------------------------------------------------------------------- writing


def _format(text: str) -> str:
    """The generated Python formatted by ruff when it is installed (it is in the dev tools);
    as generated otherwise (valid Python either way)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ruff", "format", "--line-length", "120", "-"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return text
    return done.stdout if done.returncode == 0 and done.stdout else text


def write_project(result: FeastImport, out: Path, *, force: bool = False) -> list[Path]:
    """Write ``featurestore.yaml``, ``features.py`` and ``IMPORT_REPORT.md`` into ``out``:
    none of them if one exists and ``force`` is false."""
    files = {
        out / CONFIG_FILE_NAME: result.config,
        out / FEATURES_FILE: _format(result.features),
        out / REPORT_FILE: result.report.markdown(),
    }
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise FeastImportError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: choose another --out folder, "
            "or pass --force to overwrite"
        )
    if out.exists() and not out.is_dir():
        raise FeastImportError(f"--out '{out}' is a file: give a folder")
    out.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return list(files)


def import_feast(path: Path, out: Path, *, feast_python_path: str | None = None, force: bool = False) -> FeastImport:
    """Read the Feast repository at ``path`` and write the equivalent project into ``out``."""
    repo = check_feast_repository(path)
    if out.resolve() == repo or repo in out.resolve().parents:
        raise FeastImportError(
            f"--out '{out}' is inside the Feast repository '{repo}': choose a folder outside it (Feast imports "
            "every .py file of its repository, features.py included)"
        )
    if not force:
        existing = [str(out / n) for n in (CONFIG_FILE_NAME, FEATURES_FILE, REPORT_FILE) if (out / n).exists()]
        if existing:  # before the slow read, not after
            raise FeastImportError(
                f"{', '.join(existing)} already exist: choose another --out folder, or pass --force to overwrite"
            )
    document = read_feast_repository(repo, feast_python(feast_python_path))
    result = convert(document)
    write_project(result, out, force=force)
    return result

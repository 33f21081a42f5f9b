"""The ``FeatureStore`` facade: one project's registry, stores and reads, behind one object."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurestore.auth import local_actor
from featurestore.config import ParquetOfflineConfig, ProjectConfig
from featurestore.definitions import FeatureService, FeatureView, Project, Source
from featurestore.errors import NotFoundError
from featurestore.registry import ApplyReport, Registry, TrainingDatasetRecord
from featurestore.times import aware_time
from featurestore.usage import UsageLog
from featurestore.validation import SchemaResolver, validate_project

# The modules of reads (training sets, lookups, consistency, the served-vector log) load on first
# use: `featurestore apply` needs none of them (tests/unit/test_apply_imports.py).
if TYPE_CHECKING:
    import pyarrow as pa

    from featurestore.consistency import ConsistencyReport
    from featurestore.duplicates import DuplicateCheck, DuplicateFinding, ValueComparer
    from featurestore.lookup import EntityRows, LookupPlan, OnlineResponse
    from featurestore.offline.parquet import ParquetOfflineStore
    from featurestore.online import OnlineStore
    from featurestore.retrieval import SpineLike, ViewRequest
    from featurestore.serving_log import ServedVectorLog
    from featurestore.skew import SkewReport
    from featurestore.source_probe import SourceProbe
    from featurestore.training_datasets import DatasetVerification, TrainingDataset

FeatureRefs = Sequence[str] | FeatureService | str


def create_online_store(config: ProjectConfig) -> OnlineStore:
    """The online store named by the project's config: the store class its kind names in
    ``featurestore.config.ONLINE_STORE_KINDS``, imported only now, built ``from_config``."""
    from featurestore.config import online_store_kind

    online = config.online_store
    store: OnlineStore = online_store_kind(online.type, config.file).store_class().from_config(online, config)
    return store


def create_offline_store(config: ProjectConfig) -> ParquetOfflineStore:
    """The offline store named by the project's config. A Hive store is read like a Parquet one
    (through its manifest, no Spark needed); only the Spark engine publishes to it."""
    from featurestore.config import HiveOfflineConfig
    from featurestore.offline.parquet import ParquetOfflineStore

    offline = config.offline_store
    if isinstance(offline, HiveOfflineConfig):
        from featurestore.offline.hive import HiveOfflineStore

        return HiveOfflineStore.from_config(offline, config)
    return ParquetOfflineStore(config.resolve(offline.path))


class FeatureStore:
    """Entry point of the SDK for one project: definitions, training sets, online lookups and
    reference data. Runs (computing views) are the engines' job, in ``etl``.

    Definitions are read from the registry and cached for ``definitions_ttl`` seconds, so the
    online hot path does not query the registry database on every lookup.
    """

    def __init__(
        self,
        config: ProjectConfig | str | Path = ".",
        *,
        registry: Registry | None = None,
        online_store: OnlineStore | None = None,
        definitions_ttl: float = 5.0,
    ) -> None:
        self.config = config if isinstance(config, ProjectConfig) else ProjectConfig.load(config)
        self.project = self.config.project
        self.registry = registry or Registry(self.config.registry_url)
        # A Parquet offline store (a folder) is made on first use; any other now, so that its
        # settings fail here.
        self._offline_store: ParquetOfflineStore | None = None
        if not isinstance(self.config.offline_store, ParquetOfflineConfig):
            self._offline_store = create_offline_store(self.config)
        self._online_store = online_store
        self._definitions_ttl = definitions_ttl
        self._views: dict[str, FeatureView] = {}
        self._services: dict[str, FeatureService] = {}
        self._plans: dict[tuple[Any, bool], LookupPlan] = {}
        self._views_loaded_at = -1e18
        self._model_services: tuple[float, dict[str, str]] = (-1e18, {})
        self._lock = threading.Lock()
        self.usage = UsageLog(self.registry, self.project)
        self._serving_log: ServedVectorLog | None = None
        self._serving_log_made = self.config.serving_log.sample_rate <= 0  # off: None, nothing to make

    @property
    def offline_store(self) -> ParquetOfflineStore:
        if self._offline_store is None:
            self._offline_store = create_offline_store(self.config)
        return self._offline_store

    @property
    def serving_log(self) -> ServedVectorLog | None:
        """The served-vector log (``serving_log`` in featurestore.yaml), None when off; made on
        first use."""
        if not self._serving_log_made:
            with self._lock:
                if not self._serving_log_made:
                    from featurestore.serving_log import ServedVectorLog

                    self._serving_log = ServedVectorLog.from_config(self.config)
                    self._serving_log_made = True
        return self._serving_log

    @property
    def online_store(self) -> OnlineStore:
        if self._online_store is None:
            self._online_store = create_online_store(self.config)
        return self._online_store

    # ------------------------------------------------------------------ definitions

    def apply(
        self, objects: Sequence[object], *, schema_resolver: SchemaResolver | None = None, actor: str | None = None
    ) -> ApplyReport:
        """Validate the definitions as one project (every problem reported at once) and record them.
        A change is recorded in the audit log under ``actor`` (default: this process's user@host)."""
        project: Project = validate_project(objects, schema_resolver)
        report = self.registry.apply(self.project, project)
        self.online_store.prepare([v for v in project.feature_views if v.online])
        self.refresh()
        if report.created or report.updated or report.removed:
            self.registry.record_audit(
                self.project,
                actor or local_actor(),
                "apply",
                f"project:{self.project}",
                {"created": report.created, "updated": report.updated, "removed": report.removed},
            )
        return report

    def check_sources(self, sources: Sequence[Source] | None = None, *, record: bool = True) -> list[SourceProbe]:
        """Probe ``sources`` (default: every source applied) in parallel, each within
        ``quality.probe_timeout_seconds``, and keep each probe as its source's latest in the
        registry unless ``record`` is False (see :mod:`featurestore.source_probe`)."""
        from featurestore.source_probe import probe_sources

        chosen = list(self.registry.list_sources(self.project) if sources is None else sources)
        quality = self.config.quality
        probes = probe_sources(
            chosen, self.config.root, sample_rows=quality.probe_sample_rows, timeout=quality.probe_timeout_seconds
        )
        if record:
            self.registry.record_source_probes(self.project, probes)
        return probes

    def find_duplicates(
        self,
        objects: Sequence[object],
        *,
        values: ValueComparer | None = None,
        views: Sequence[str] | None = None,
    ) -> DuplicateCheck:
        """The features of the new or changed views among ``objects`` (or of ``views``) that
        duplicate another feature: exact duplicates (same source and normalized expression), and
        with ``values`` (e.g. ``etl.duplicates.SampleComparer(store)``) features equal or
        correlated by value (see :mod:`featurestore.duplicates`). Records nothing."""
        from featurestore.duplicates import find_duplicates

        return find_duplicates(self.registry, self.project, objects, root=self.config.root, values=values, views=views)

    def find_recorded_duplicates(self, view: str | None = None) -> list[DuplicateFinding]:
        """The duplicates ``featurestore apply`` recorded (of ``view``, on either side, when given)."""
        return self.registry.list_duplicates(self.project, view)

    def refresh(self) -> None:
        """Forget cached definitions; the next read loads them from the registry."""
        with self._lock:
            self._views_loaded_at = -1e18

    def feature_views(self) -> dict[str, FeatureView]:
        self._load_definitions()
        return self._views

    def feature_services(self) -> dict[str, FeatureService]:
        self._load_definitions()
        return self._services

    def _load_definitions(self) -> None:
        now = time.monotonic()
        if now - self._views_loaded_at > self._definitions_ttl:
            views = {v.name: v for v in self.registry.list_feature_views(self.project)}
            services = {s.name: s for s in self.registry.list_feature_services(self.project)}
            with self._lock:
                if views != self._views or services != self._services:
                    self._plans = {}
                self._views, self._services, self._views_loaded_at = views, services, now

    def get_feature_view(self, name: str) -> FeatureView:
        views = self.feature_views()
        if name not in views:
            raise NotFoundError("feature view", name, project=self.project, candidates=views)
        return views[name]

    def _resolve(self, features: FeatureRefs) -> list[ViewRequest]:
        from featurestore.retrieval import resolve_features

        services = self.feature_services()
        if isinstance(features, str) and ":" not in features and features in services:
            features = services[features]
        return resolve_features(self.feature_views(), features, project=self.project, services=services)

    def _lookup_plan(self, features: FeatureRefs, full_names: bool) -> LookupPlan:
        """The resolved plan of a feature list, cached until the definitions change."""
        self._load_definitions()
        ref = tuple(features) if isinstance(features, list | tuple) else features
        try:
            return self._plans[(ref, full_names)]
        except (KeyError, TypeError):
            pass
        from featurestore.lookup import LookupPlan

        plan = LookupPlan.build(self._resolve(features), full_names=full_names)
        with self._lock:
            if len(self._plans) > 1000:  # callers with ever-changing feature lists: keep memory bounded
                self._plans = {}
            with contextlib.suppress(TypeError):  # an unhashable reference: not cached
                self._plans[(ref, full_names)] = plan
        return plan

    def model_feature_services(self, models: Sequence[str]) -> set[str]:
        """The feature services the named registered models consume (what a ``service`` token may
        read online), from the registry at most every ``definitions_ttl`` seconds."""
        now = time.monotonic()
        loaded_at, services = self._model_services
        if now - loaded_at > self._definitions_ttl:
            services = {m.name: m.feature_service for m in self.registry.list_models(self.project)}
            self._model_services = (now, services)
        return {services[m] for m in models if m in services}

    def register_model(
        self, name: str, feature_service: str, description: str = "", *, actor: str | None = None
    ) -> None:
        """Record that a model consumes a feature service (lineage service → model), and who did."""
        self.registry.register_model(self.project, name, feature_service, description)
        self._model_services = (-1e18, {})
        self.registry.record_audit(
            self.project,
            actor or local_actor(),
            "model.register",
            f"model:{name}",
            {"feature_service": feature_service},
        )

    # ------------------------------------------------------------------ reads

    def _log(self, consumer: str, kind: str, requests: Sequence[ViewRequest], rows: int) -> None:
        self.usage.record(consumer, kind, tuple((r.view.name, r.features) for r in requests), rows)

    def get_training_set(
        self,
        spine: SpineLike,
        features: FeatureRefs,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        consumer: str = "sdk",
    ) -> pa.Table:
        """Point-in-time correct features for every spine row (keys, a timestamp, any labels).

        ``spine``: a pandas DataFrame, a pyarrow Table, a dict of columns or a list of row dicts.
        Its timestamps must carry a time zone (or be dates, 00:00 UTC; or ISO 8601 text with an
        offset): see :mod:`featurestore.times`. The result is the spine, in its order and with its
        timestamp column as given (same time zone), followed by the features."""
        from featurestore.retrieval import normalize_spine, training_set

        requests = self._resolve(features)
        normalized = normalize_spine(spine, timestamp_column, requests)
        files = {r.view.name: self.offline_store.files(r.view) for r in requests}
        result = training_set(normalized, timestamp_column, requests, files, full_names=full_feature_names)
        self._log(consumer, "training", requests, result.num_rows)
        return result

    def create_training_dataset(
        self,
        name: str,
        spine: SpineLike,
        service: FeatureRefs,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        description: str = "",
        actor: str | None = None,
    ) -> TrainingDataset:
        """Build the training set of ``spine`` for ``service`` (a feature service, or feature
        references) and save it under ``name``: its spine and rows kept offline, content-hashed,
        and what it read recorded in the registry (see :mod:`featurestore.training_datasets`), by
        ``actor`` (default: this process's user@host). A name is immutable: saving it again gives
        the saved dataset back if the rows built now are the same bytes, else is refused."""
        from featurestore import training_datasets

        who = actor or local_actor()
        named = service.name if isinstance(service, FeatureService) else service
        requests = self._resolve(service)
        dataset, created = training_datasets.create_training_dataset(
            self.registry,
            self.offline_store,
            self.project,
            name,
            spine,
            requests,
            feature_service=named if isinstance(named, str) and named in self.feature_services() else None,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            description=description,
            actor=who,
        )
        if created:
            self._log(who, "training", requests, dataset.rows.num_rows)
        return dataset

    def get_training_dataset(self, name: str) -> TrainingDataset:
        """A saved dataset: its record and its rows exactly as they were built (the same bytes),
        whatever runs, backfills or pushes came since. An unknown name suggests the nearest."""
        from featurestore import training_datasets

        record = self.registry.get_training_dataset(self.project, name)
        return training_datasets.TrainingDataset(record, training_datasets.read_rows(self.offline_store, record))

    def list_training_datasets(self) -> list[TrainingDatasetRecord]:
        """The project's saved datasets, newest first."""
        return self.registry.list_training_datasets(self.project)

    def verify_training_dataset(self, name: str) -> DatasetVerification:
        """Rebuild a saved dataset from today's offline state and compare it with the saved rows:
        identical or not, how many rows differ, and which runs replaced the ones it read."""
        from featurestore import training_datasets

        record = self.registry.get_training_dataset(self.project, name)
        return training_datasets.verify_training_dataset(self.registry, self.offline_store, record, self._resolve)

    def get_online_features(
        self,
        features: FeatureRefs,
        entity_rows: EntityRows,
        *,
        full_feature_names: bool = False,
        consumer: str = "sdk",
        now: datetime | None = None,
        log_served: bool = True,
    ) -> OnlineResponse:
        """The latest values of the entities' features, with a status per value (TTL honoured).
        With the served-vector log on, the vectors are logged unless ``log_served`` is False (the
        model server logs its lookups itself, with the model and versions)."""
        plan = self._lookup_plan(features, full_feature_names)
        response = plan.lookup(self.online_store, entity_rows, now=now)
        n = len(next(iter(response.keys.values()), []))
        self.usage.record(consumer, "online", plan.usage_key, n)
        if self.serving_log is not None and log_served:
            named = features.name if isinstance(features, FeatureService) else features
            service = named if isinstance(named, str) and named in self._services else None
            if service is not None or self.serving_log.settings.log_feature_lists:
                self.serving_log.log(response, plan, consumer=consumer, service=service)
        return response

    def get_reference_data(
        self,
        view: str,
        as_of_time: datetime | date,
        *,
        features: Sequence[str] | None = None,
        include_expired: bool = False,
        consumer: str = "sdk",
    ) -> pa.Table:
        """Every entity's values of a view as of a time (the latest row at or before it, within TTL).

        ``as_of_time``: an aware datetime, or a date (that day from 00:00 UTC); a naive datetime is
        refused (see :mod:`featurestore.times`)."""
        from featurestore.retrieval import as_of, resolve_features

        as_of_time = aware_time(as_of_time, "The as_of_time argument")
        refs = [f"{view}:{f}" for f in features] if features else [view]
        (request,) = resolve_features(self.feature_views(), refs, project=self.project)  # a view, not a service
        table = as_of(
            request.view,
            self.offline_store.files(request.view),
            request.features,
            as_of_time,
            include_expired=include_expired,
        )
        self._log(consumer, "reference", [request], table.num_rows)
        return table

    def check_consistency(self, view: str, *, sample: int | None = 1000, seed: int | None = None) -> ConsistencyReport:
        """Compare the online store with the offline store as of the view's last published
        watermark (``sample`` random entities, or all when ``None``; ``seed`` repeats a sample,
        recorded in the report) and record the outcome."""
        from featurestore.consistency import check_consistency

        fv = self.get_feature_view(view)
        report = check_consistency(
            fv,
            self.offline_store,
            self.online_store,
            # The manifest's watermark is written with the files it describes, so it is right even
            # when a run died between publishing and telling the registry.
            self.offline_store.watermark(fv) or self.registry.watermark(self.project, view),
            sample=sample,
            seed=seed,
        )
        self.registry.record_consistency(self.project, report.to_dict())
        return report

    def skew_report(
        self, service: str, since: datetime | date, until: datetime | date | None = None, *, actor: str | None = None
    ) -> SkewReport:
        """Compare the vectors served for ``service`` (logged by the served-vector log) with the
        offline values as of each request, per feature, and record the report (see
        :mod:`featurestore.skew`)."""
        from featurestore.skew import skew_report

        return skew_report(self, service, since, until, actor=actor)

    def close(self) -> None:
        self.usage.close()
        self._serving_log_made = True  # none made after closing
        if self._serving_log is not None:
            self._serving_log.close()
        if self._online_store is not None:
            self._online_store.close()
        self.registry.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

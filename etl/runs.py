"""What every engine's run shares: which view definition may run, the window's checks, the
run's record in the registry from its start to its outcome (:func:`recorded_run`), and how a
failed run's outcome is told (what was and was not published)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tqdm.auto import tqdm

from featurestore.definitions import FeatureView
from featurestore.errors import FeatureStoreError, NotFoundError, RunError
from featurestore.online import OnlineStore
from featurestore.store import FeatureStore

log = logging.getLogger(__name__)

RUN_STEPS = 4
"""Steps of a run's progress bar: checked, staged offline, written online, published offline."""


@dataclass(frozen=True)
class RunResult:
    """What a run did; the same figures are recorded in the registry under ``run_id``."""

    run_id: str
    view: str
    status: str
    rows_computed: int
    rows_offline: int
    rows_online: int
    rows_online_skipped_older: int
    watermark: datetime | None
    timings: dict[str, float] = field(default_factory=dict)
    quality: str = "unchecked"
    """The quality gate's verdict: ``passed``, ``warned`` or ``quarantined`` (see ``quality.report``);
    ``unchecked`` from an engine that does not call the gate."""
    rows_quarantined: int = 0


def check_window(start: datetime | None, end: datetime | None) -> None:
    """A run window's bounds must be aware times, start before end."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise RunError(
                f"Run window {name} {value} has no time zone; give UTC times, e.g. 2024-01-01T00:00:00+00:00"
            )
    if start is not None and end is not None and start >= end:
        raise RunError(f"Run window start {start} is not before end {end}")


def view_to_run(store: FeatureStore, view_name: str, definitions: dict[str, FeatureView] | None) -> FeatureView:
    """The view from ``definitions`` (the project's files), which must be the applied one: a
    run records the registry's version, and readers decode what it publishes with the
    registry's definition. Without ``definitions``, the registry's view (SQL only)."""
    defined = (definitions or {}).get(view_name)
    try:
        applied = store.registry.get_feature_view(store.project, view_name)
    except NotFoundError:
        if defined is None:
            raise
        raise RunError(
            f"Feature view '{view_name}' is defined but not applied; run 'featurestore apply' first"
        ) from None
    if defined is None:
        return applied
    if defined.schema_fingerprint() != applied.schema_fingerprint():
        raise RunError(
            f"Feature view '{view_name}' has changed since it was applied (its keys, features, timestamp, "
            "source, transformation or TTL differ from the registry's); run 'featurestore apply' first"
        )
    if [e.to_spec() for e in defined.expectations] != [e.to_spec() for e in applied.expectations]:
        # A run is checked against the expectations the registry shows, never others.
        raise RunError(
            f"Feature view '{view_name}': its expectations have changed since it was applied; "
            "run 'featurestore apply' first"
        )
    return defined


def failure_outcome(online_started: bool, online_store: OnlineStore | None) -> str:
    """What a failed run left behind, for its log line and error message."""
    if online_started and online_store is not None and not online_store.transactional_writes:
        return (
            "the offline store is unchanged; the online store may hold some of its rows (never "
            "replacing newer ones): re-run the window to converge"
        )
    return "nothing was published"


class RecordedRun:
    """A run in progress, as :func:`recorded_run` gives it to the engine: its id, a progress bar
    of :data:`RUN_STEPS` steps, the timings it records, and what it must do should it fail."""

    def __init__(self, view: FeatureView, run_id: str, bar: tqdm) -> None:
        self.view = view
        self.run_id = run_id
        self.bar = bar
        self.timings: dict[str, float] = {}
        self.online_started = False
        """Set before the first online write: a failure after it may leave rows online."""
        self._result: RunResult | None = None
        self._undo: list[Callable[[], object]] = []

    @property
    def result(self) -> RunResult:
        """What the run did, once the engine has told it with :meth:`succeeded`."""
        if self._result is None:
            raise RuntimeError(f"run {self.run_id} of '{self.view.name}' has not succeeded")
        return self._result

    def on_failure(self, undo: Callable[[], object]) -> None:
        """Call ``undo`` if the run fails (the latest registered first), before it is recorded failed."""
        self._undo.append(undo)

    def succeeded(
        self,
        *,
        rows_computed: int,
        rows_offline: int,
        rows_online: int,
        rows_online_skipped_older: int,
        watermark: datetime | None,
        quality: str,
        rows_quarantined: int,
    ) -> None:
        """The run's figures, once everything is published (the last thing the engine does)."""
        self._result = RunResult(
            run_id=self.run_id,
            view=self.view.name,
            status="succeeded",
            rows_computed=rows_computed,
            rows_offline=rows_offline,
            rows_online=rows_online,
            rows_online_skipped_older=rows_online_skipped_older,
            watermark=watermark,
            timings=self.timings,
            quality=quality,
            rows_quarantined=rows_quarantined,
        )


@contextmanager
def recorded_run(
    store: FeatureStore,
    view: FeatureView,
    *,
    engine: str,
    start: datetime | None,
    end: datetime | None,
    progress: bool,
    remove_leftovers: Callable[[], list[Path]] = list,
    describe_error: Callable[[BaseException], str] = str,
) -> Iterator[RecordedRun]:
    """One run of ``view`` as the registry records it, the same for every engine.

    The view's publish lock is held from the run's start to its end, so a run that finds another
    run of the view still "running" knows that run's process died: it marks it abandoned and
    removes the unpublished files it left (the offline store's orphans and ``remove_leftovers``).
    If the body raises, the run's ``on_failure`` callbacks run, the run is recorded failed with
    what it left behind, and the error is raised again: a :class:`RunError` naming the view and
    the outcome, unless it is a FeatureStoreError or a KeyboardInterrupt (``describe_error``
    gives the message of other errors). Else the body has called ``succeeded`` after publishing,
    and the run is recorded succeeded, under the lock, so no other run can mark it abandoned
    meanwhile. A crash between publishing and that record leaves the run "running" until the
    next run marks it abandoned; its files stay published and the manifest holds their watermark.
    """
    registry, project, offline = store.registry, store.project, store.offline_store
    label = "" if engine == "local" else f" ({engine})"
    bar = tqdm(total=RUN_STEPS, desc=f"run {view.name}{label}", unit="step", disable=not progress, leave=False)
    with offline.lock(view):
        run_id = registry.start_run(project, view.name, engine=engine, window_start=start, window_end=end)
        abandoned = registry.abandon_runs(project, view.name, found_by=run_id)
        orphans = [*offline.remove_orphans(view), *remove_leftovers()]
        if abandoned or orphans:
            log.warning(
                "feature view '%s': %d earlier run(s) stopped without an outcome, now marked abandoned; "
                "removed %d unpublished file(s) they left",
                view.name,
                len(abandoned),
                len(orphans),
            )
        run = RecordedRun(view, run_id, bar)
        try:
            yield run
        except BaseException as err:
            for undo in reversed(run._undo):
                undo()
            message = str(err) if isinstance(err, FeatureStoreError) else describe_error(err)
            registry.finish_run(run_id, status="failed", timings=run.timings, error=f"{type(err).__name__}: {message}")
            bar.close()
            outcome = failure_outcome(run.online_started, store.online_store if view.online else None)
            log.error("run %s of feature view '%s' failed; %s: %s", run_id, view.name, outcome, message)
            if isinstance(err, FeatureStoreError | KeyboardInterrupt):
                raise
            raise RunError(f"Run of feature view '{view.name}' failed; {outcome}: {message}") from err
        bar.close()
        result = run.result  # raises if the engine did not tell (a bug): the run stays "running"
        registry.finish_run(
            run_id,
            status="succeeded",
            rows_computed=result.rows_computed,
            rows_offline=result.rows_offline,
            rows_online=result.rows_online,
            timings=result.timings,
            watermark=result.watermark,
        )
    log.info(
        "run %s of '%s'%s: %d rows offline, %d online (%d older skipped), watermark %s",
        run_id,
        view.name,
        "" if engine == "local" else f" on {engine.capitalize()}",
        result.rows_offline,
        result.rows_online,
        result.rows_online_skipped_older,
        result.watermark,
    )

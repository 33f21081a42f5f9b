"""The scheduler: runs each feature view that declares a ``schedule`` when it is due.

Each due time ``d`` of a view's schedule (:mod:`featurestore.schedules`) asks for one run over
``[watermark, d)``: from the newest event time the view has published (so a run recomputes what
may have changed since, idempotently) to the due time. A view without a watermark runs over its
whole history, or over ``initial_window`` before the due time. The schedules are read from the
registry at every tick, so an ``apply`` that changes one takes effect without a restart.

* **Catch-up.** Due times missed while the scheduler was down (since the end of the view's last
  successful run's window) are run oldest first, at most ``max_catchup`` of them: the latest
  ones. The first run's window starts at the watermark, so the ones left out are covered anyway.
* **No overlap.** A view whose run is still going in this scheduler is skipped; the view's
  run lock keeps any other process's run of it out.
* **Retries.** A failed run is tried again after ``backoff``, doubling each time (at most
  ``max_backoff``), up to ``attempts`` attempts; then that due time is given up (logged) and the
  next one waits for its time. Every attempt is in the registry's run history, failed ones with
  their error (an attempt refused before a run started is recorded as a failed run too).
* **Alerts.** Every tick checks the freshness of the project's views and delivers alerts
  (:mod:`featurestore.alerts`): a view whose lag exceeds its ``freshness`` opens a ``stale``
  incident, a due time given up after its attempts a ``run_failed`` one; each alerts the
  channels of ``alerts`` in ``featurestore.yaml`` once, and again when it clears.
* **Stopping.** :meth:`Scheduler.stop` (SIGTERM, SIGINT) starts nothing more and lets the run in
  progress finish; a process killed mid-run leaves it to the publish protocol (``etl/runs.py``):
  the next run of the view marks it abandoned and completes or discards what it left.

The clock and the sleep are parameters, so tests drive :meth:`Scheduler.tick` with a fake clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from featurestore.alerts import AlertMonitor
from featurestore.definitions import FeatureView
from featurestore.errors import FeatureStoreError
from featurestore.schedules import Schedule, due_times, next_due, schedule_text
from featurestore.secrets import redact
from featurestore.store import FeatureStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]


class RunsViews(Protocol):
    """What the scheduler runs views with: ``LocalEngine`` (or ``SparkEngine``)."""

    def run(
        self,
        view_name: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        definitions: dict[str, FeatureView] | None = None,
        progress: bool = True,
    ) -> object: ...


@dataclass(frozen=True, kw_only=True)
class SchedulerSettings:
    """How the scheduler catches up, retries and starts views without a watermark."""

    max_catchup: int = 10
    """At most this many missed due times of a view are run after downtime (the latest ones)."""
    attempts: int = 3
    """Attempts per due time, the first included."""
    backoff: timedelta = timedelta(seconds=30)
    """Wait before the first retry; doubled for each further one."""
    max_backoff: timedelta = timedelta(minutes=30)
    initial_window: timedelta | None = None
    """A view's first run (no watermark) covers this much before its due time; None: all history."""
    poll: timedelta = timedelta(seconds=60)
    """The longest sleep between ticks: how soon a newly applied schedule is seen."""


@dataclass
class _ViewState:
    handled: datetime | None
    """The latest due time done: run successfully, or given up after its attempts."""
    pending: list[datetime] = field(default_factory=list)
    failures: int = 0
    """Failed attempts of ``pending[0]``."""
    retry_at: datetime | None = None
    running: Future[None] | None = None


@dataclass(frozen=True)
class Attempt:
    """One run the scheduler started (returned by :meth:`Scheduler.tick`)."""

    view: str
    due: datetime
    start: datetime | None
    attempt: int


class Scheduler:
    """Runs due feature views of ``store``'s project through ``engine``, one at a time per view.

    ``definitions`` loads the project's definitions (the runs need them for pandas
    transformations); without it the registry's views are run (SQL ones only). ``alerts``: the
    project's alert monitor (default: one on the ``alerts`` section of its configuration)."""

    def __init__(
        self,
        store: FeatureStore,
        engine: RunsViews,
        *,
        definitions: Callable[[], Mapping[str, FeatureView]] | None = None,
        settings: SchedulerSettings | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        workers: int = 1,
        alerts: AlertMonitor | None = None,
    ) -> None:
        self.store, self.engine = store, engine
        self.settings = settings or SchedulerSettings()
        if self.settings.attempts < 1 or self.settings.max_catchup < 1:
            raise ValueError("attempts and max_catchup must be at least 1")
        self._definitions = definitions
        self.alerts = alerts or AlertMonitor(store.registry, store.project, store.config.alerts)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._wake = threading.Event()
        self._sleep = sleep or self._wait
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._states: dict[str, _ViewState] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="featurestore-run")

    # ------------------------------------------------------------------ one tick

    def tick(self) -> list[Attempt]:
        """Start every run due at the clock's now (skipping views whose run is still going, and
        retries whose backoff has not passed), then check and deliver alerts; returns the
        attempts started."""
        if self._stopping.is_set():
            return []
        now = self._clock()
        registry, project = self.store.registry, self.store.project
        every_view = registry.list_feature_views(project)
        views = [v for v in every_view if v.schedule is not None]
        definitions: dict[str, FeatureView] | None = None
        loaded = False
        started: list[Attempt] = []
        for view in views:
            if view.schedule is None:
                continue
            with self._lock:
                state = self._states.get(view.name)
                if state is None:
                    state = self._states[view.name] = _ViewState(handled=self._last_handled(view.name))
                if state.running is not None and not state.running.done():
                    log.debug("feature view '%s': its previous run is still going; skipped", view.name)
                    continue
                self._add_due_times(view.name, view.schedule, state, now)
                if not state.pending or (state.retry_at is not None and now < state.retry_at):
                    continue
                due = state.pending[0]
                watermark = registry.watermark(project, view.name, batch_only=True)
                start = watermark
                if start is None and self.settings.initial_window is not None:
                    start = due - self.settings.initial_window
                if start is not None and start >= due:
                    log.info(
                        "feature view '%s': due at %s, but its data is published up to %s already; nothing to run",
                        view.name,
                        due.isoformat(),
                        start.isoformat(),
                    )
                    self._done(state)
                    continue
                if not loaded:  # the project's files, read once per tick that starts a run
                    definitions, loaded = self._load_definitions(), True
                attempt = Attempt(view.name, due, start, state.failures + 1)
                state.running = self._pool.submit(self._attempt, attempt, definitions)
                started.append(attempt)
        self.alerts.check(every_view, now)
        return started

    def _add_due_times(self, view: str, schedule: Schedule, state: _ViewState, now: datetime) -> None:
        after = state.pending[-1] if state.pending else state.handled
        # Never run (no window end on record): one run, at the latest due time, covers the history.
        limit = self.settings.max_catchup if after is not None else 1
        found, skipped = due_times(schedule, after, now, limit=limit)
        state.pending.extend(found)
        dropped = len(state.pending) - self.settings.max_catchup
        if dropped > 0:
            del state.pending[:dropped]
            state.failures, state.retry_at = 0, None
            skipped += dropped
        if skipped:
            log.warning(
                "feature view '%s' (%s): %s%d missed due time(s) left out of the catch-up (max %d); the next "
                "run's window starts at the view's watermark, so their data is still computed",
                view,
                schedule_text(schedule),
                "at least " if skipped >= 10_000 else "",
                skipped,
                self.settings.max_catchup,
            )

    def _attempt(self, attempt: Attempt, definitions: dict[str, FeatureView] | None) -> None:
        registry, project = self.store.registry, self.store.project
        log.info(
            "feature view '%s': scheduled run for %s (window %s to %s), attempt %d of %d",
            attempt.view,
            attempt.due.isoformat(),
            attempt.start.isoformat() if attempt.start else "the beginning",
            attempt.due.isoformat(),
            attempt.attempt,
            self.settings.attempts,
        )
        error: BaseException | None = None
        before: set[str] = set()
        try:
            before = {r.id for r in registry.list_runs(project, attempt.view, limit=5, batch_only=True)}
            self.engine.run(attempt.view, start=attempt.start, end=attempt.due, definitions=definitions, progress=False)
        except Exception as err:
            error = err
            if not {r.id for r in registry.list_runs(project, attempt.view, limit=5, batch_only=True)} - before:
                # Refused before the pipeline recorded a run (a definition not applied, say):
                # recorded here, so that the history shows every attempt.
                run_id = registry.start_run(
                    project, attempt.view, engine="scheduler", window_start=attempt.start, window_end=attempt.due
                )
                registry.finish_run(run_id, status="failed", error=f"{type(err).__name__}: {redact(str(err))}")
        finally:
            gave_up = False
            with self._lock:
                state = self._states[attempt.view]
                if error is None:
                    self._done(state)
                else:
                    gave_up = self._failed(attempt, state, error)
            if gave_up and error is not None:
                self.alerts.run_gave_up(
                    attempt.view, due=attempt.due, attempts=attempt.attempt, error=_error_text(error), now=self._clock()
                )
            self._wake.set()

    def _failed(self, attempt: Attempt, state: _ViewState, error: BaseException) -> bool:
        """Count a failed attempt; True when its due time is given up."""
        state.failures += 1
        message = _error_text(error)
        if state.failures >= self.settings.attempts:
            log.error(
                "feature view '%s': the run due at %s failed %d time(s); giving up on it: %s",
                attempt.view,
                attempt.due.isoformat(),
                state.failures,
                message,
            )
            self._done(state)
            return True
        delay = min(self.settings.backoff * 2 ** (state.failures - 1), self.settings.max_backoff)
        state.retry_at = self._clock() + delay
        log.warning(
            "feature view '%s': the run due at %s failed (attempt %d of %d); retrying in %s: %s",
            attempt.view,
            attempt.due.isoformat(),
            state.failures,
            self.settings.attempts,
            delay,
            message,
        )
        return False

    @staticmethod
    def _done(state: _ViewState) -> None:
        state.handled = state.pending.pop(0)
        state.failures, state.retry_at = 0, None

    def _last_handled(self, view: str) -> datetime | None:
        """The end of the window of the view's newest successful run that had one: due times
        after it were missed. None when no run had an end (it is due at once)."""
        for run in self.store.registry.list_runs(self.store.project, view, limit=200, batch_only=True):
            if run.status == "succeeded" and run.window_end is not None:
                end = run.window_end
                return end if end.tzinfo is not None else end.replace(tzinfo=UTC)
        return None

    def _load_definitions(self) -> dict[str, FeatureView] | None:
        if self._definitions is None:
            return None
        try:
            return dict(self._definitions())
        except FeatureStoreError as err:
            log.error("the project's definitions cannot be loaded; running the registry's views: %s", redact(str(err)))
            return None

    # ------------------------------------------------------------------ the loop

    def next_wake(self) -> datetime:
        """When the next tick has something to do: the earliest next due time or retry, at most
        ``poll`` from now."""
        now = self._clock()
        wake = now + self.settings.poll
        with self._lock:
            states = dict(self._states)
        views = {v.name: v for v in self.store.registry.list_feature_views(self.store.project)}
        for name, state in states.items():
            view = views.get(name)
            if view is None or view.schedule is None or (state.running is not None and not state.running.done()):
                continue  # a run's end wakes the loop
            if state.retry_at is not None:
                wake = min(wake, state.retry_at)
            elif state.pending:
                wake = now
            else:
                last = state.handled or now
                wake = min(wake, next_due(view.schedule, max(last, now)))
        turns_stale = self.alerts.next_check(list(views.values()), now)
        if turns_stale is not None:
            wake = min(wake, turns_stale)
        return max(wake, now)

    def run_forever(self) -> None:
        """Tick and sleep until :meth:`stop`; then let the run in progress finish."""
        log.info("scheduler of project '%s' started", self.store.project)
        try:
            while not self._stopping.is_set():
                try:
                    self.tick()
                    delay = (self.next_wake() - self._clock()).total_seconds()
                except FeatureStoreError as err:  # the registry unreachable, say: try again later
                    log.error("scheduler tick failed: %s", redact(str(err)))
                    delay = self.settings.poll.total_seconds()
                if not self._stopping.is_set():
                    self._sleep(max(delay, 0.0))
        finally:
            self.close()
        log.info("scheduler of project '%s' stopped", self.store.project)

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Start no more runs and wake the loop (safe from a signal handler)."""
        self._stopping.set()
        self._wake.set()

    def join(self) -> None:
        """Wait for the runs in progress to finish."""
        with self._lock:
            running = [s.running for s in self._states.values() if s.running is not None]
        for future in running:
            future.result()

    def close(self) -> None:
        """Wait for the runs in progress (a run is finished, never cut short) and stop the workers."""
        self._pool.shutdown(wait=True)

    def _wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()


def _error_text(error: BaseException) -> str:
    return redact(str(error) if isinstance(error, FeatureStoreError) else f"{type(error).__name__}: {error}")

"""Freshness and run failure alerts: incidents opened and cleared, their messages delivered.

The scheduler (``etl/scheduler.py``) calls :meth:`AlertMonitor.check` at every tick and
:meth:`AlertMonitor.run_gave_up` when a scheduled run fails its last attempt. Two kinds of
incident, at most one open per feature view and kind:

* ``stale``: the view declares a ``freshness`` and its lag, now minus the newest event time a
  successful run published (the watermark: what ``featurestore_freshness_lag_seconds`` reports),
  exceeds it. It clears when a run publishes newer data. A view that has published nothing has
  no lag (as in the metrics) and is not alerted as stale; its failing runs are alerted below.
* ``run_failed``: a scheduled run was given up after its attempts (``--attempts``; failed
  attempts that are retried do not alert). It clears when a later run of the view succeeds,
  scheduled or not.

Each incident sends one ``opened`` message to every channel of ``alerts.channels`` and one
``cleared`` message when it clears; an open incident is never alerted again. The state is in
the registry (:mod:`featurestore.registry.alerts`), so a restarted scheduler carries on. A
delivery that fails is logged, recorded and tried again at the next ticks, up to
``alerts.max_attempts`` attempts; it never stops the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from featurestore.alert_channels import AlertChannel, AlertDeliveryError, AlertMessage, channel_of
from featurestore.config import AlertsConfig
from featurestore.definitions import FeatureView
from featurestore.registry import AlertIncident, Registry
from featurestore.schedules import is_stale
from featurestore.secrets import redact

log = logging.getLogger(__name__)

OPEN_LIMIT = 10_000
"""At most this many open incidents of a project are read per check."""
KIND_TITLES = {"stale": "STALE", "run_failed": "RUN FAILED"}


class AlertMonitor:
    """Opens and clears the alert incidents of ``project`` and delivers their messages to the
    channels of ``config`` (or ``channels``, given by tests)."""

    def __init__(
        self,
        registry: Registry,
        project: str,
        config: AlertsConfig,
        *,
        channels: Sequence[AlertChannel] | None = None,
    ) -> None:
        self.registry, self.project = registry, project
        found = channels if channels is not None else [channel_of(c) for c in config.channels]
        self.channels: dict[str, AlertChannel] = {c.name: c for c in found}
        self.max_attempts = config.max_attempts

    # ------------------------------------------------------------------ evaluation

    def check(self, views: Sequence[FeatureView], now: datetime) -> None:
        """Open and clear incidents as ``views`` (all of the project's) stand at ``now``, then
        deliver what is undelivered. Never raises: a problem is logged and the next check tries again."""
        try:
            self._check_freshness(views, now)
            self._check_runs(views, now)
        except Exception as err:  # the registry unreachable, say: the scheduler carries on
            log.error("alerts of project '%s': checking failed: %s", self.project, _text(err))
        self.deliver(now)

    def _open(self) -> list[AlertIncident]:
        return self.registry.list_incidents(self.project, open_only=True, limit=OPEN_LIMIT)

    def _check_freshness(self, views: Sequence[FeatureView], now: datetime) -> None:
        watermarks = self.registry.watermarks(self.project)
        open_stale = {i.view: i for i in self._open() if i.kind == "stale"}
        declared = {v.name: v for v in views if v.freshness is not None}
        for name, view in declared.items():
            watermark = watermarks.get(name)
            if view.freshness is None or watermark is None:
                continue
            lag = now - watermark
            figures = {
                "watermark": watermark.isoformat(),
                "lag_seconds": round(lag.total_seconds(), 3),
                "freshness_seconds": view.freshness.total_seconds(),
            }
            incident = open_stale.get(name)
            if is_stale(watermark, view.freshness, view.ttl, now) and incident is None:
                summary = (
                    f"Feature view '{name}' is stale: its newest published data (event time "
                    f"{watermark.isoformat()}) is {_duration(lag)} old, beyond its freshness of {_duration(view.freshness)}."
                )
                self._open_incident(name, "stale", now, {"summary": summary, **figures})
            elif not is_stale(watermark, view.freshness, view.ttl, now) and incident is not None:
                summary = (
                    f"Feature view '{name}' is fresh again: its newest published data (event time "
                    f"{watermark.isoformat()}) is {_duration(lag)} old, within its freshness of {_duration(view.freshness)}."
                )
                self._clear(incident, now, {"summary": summary, **figures})
        for name, incident in open_stale.items():
            if name not in declared:
                gone = "was removed" if name not in {v.name for v in views} else "no longer declares a freshness"
                self._clear(
                    incident, now, {"summary": f"Feature view '{name}' {gone}: no longer checked for staleness."}
                )

    def _check_runs(self, views: Sequence[FeatureView], now: datetime) -> None:
        names = {v.name for v in views}
        for incident in self._open():
            if incident.kind != "run_failed":
                continue
            if incident.view not in names:
                summary = f"Feature view '{incident.view}' was removed: its failed runs no longer matter."
                self._clear(incident, now, {"summary": summary})
                continue
            failed = incident.detail.get("run_started_at")
            failed_at = datetime.fromisoformat(failed) if isinstance(failed, str) else None
            for run in self.registry.list_runs(self.project, incident.view, limit=50, batch_only=True):
                # Times of the registry's own clock on both sides (the scheduler's may be another).
                if run.status == "succeeded" and (failed_at is None or run.started_at > failed_at):
                    summary = f"Feature view '{incident.view}' ran successfully again (run {run.id[:8]})."
                    self._clear(incident, now, {"summary": summary, "run_id": run.id})
                    break

    def run_gave_up(self, view: str, *, due: datetime, attempts: int, error: str, now: datetime) -> None:
        """The scheduled run of ``view`` due at ``due`` failed its last attempt: open a
        ``run_failed`` incident, unless one is open. Never raises."""
        try:
            runs = self.registry.list_runs(self.project, view, limit=1, batch_only=True)
            error = redact(error)
            detail: dict[str, Any] = {
                "summary": f"The scheduled run of feature view '{view}' due at {due.isoformat()} failed "
                f"{attempts} time(s) and was given up: {error}",
                "due": due.isoformat(),
                "attempts": attempts,
                "error": error,
            }
            if runs:
                detail.update(run_id=runs[0].id, run_started_at=runs[0].started_at.isoformat())
            self._open_incident(view, "run_failed", now, detail)
        except Exception as err:
            log.error("alerts of project '%s': recording a failed run failed: %s", self.project, _text(err))

    def _open_incident(self, view: str, kind: str, now: datetime, detail: Mapping[str, Any]) -> None:
        incident = self.registry.open_incident(
            self.project, view, kind, at=now, detail=detail, channels=list(self.channels)
        )
        if incident is not None:
            log.warning("alert #%d opened (%s): %s", incident.id, kind, incident.summary)

    def _clear(self, incident: AlertIncident, now: datetime, detail: Mapping[str, Any]) -> None:
        if self.registry.clear_incident(incident.id, at=now, detail=detail, channels=list(self.channels)):
            log.info("alert #%d cleared (%s): %s", incident.id, incident.kind, detail["summary"])

    def next_check(self, views: Sequence[FeatureView], now: datetime) -> datetime | None:
        """The soonest time after ``now`` at which a view not yet alerted turns stale, if any."""
        watermarks = self.registry.watermarks(self.project)
        stale = {i.view for i in self._open() if i.kind == "stale"}
        times = [
            watermarks[v.name] + v.freshness + timedelta(microseconds=1)
            for v in views
            if v.freshness is not None and v.name in watermarks and v.name not in stale
        ]
        later = [t for t in times if t > now]
        return min(later) if later else None

    # ------------------------------------------------------------------ delivery

    def deliver(self, now: datetime) -> None:
        """Attempt every undelivered message once. A channel that fails is not tried again in
        this call (its other messages wait for the next, without using an attempt), so one
        unreachable server delays a tick by one timeout, not one per message. Never raises."""
        try:
            undelivered = self.registry.undelivered(self.project)
        except Exception as err:
            log.error("alerts of project '%s': reading undelivered alerts failed: %s", self.project, _text(err))
            return
        failing: set[str] = set()
        for incident, delivery in undelivered:
            if delivery.channel in failing:
                continue
            channel = self.channels.get(delivery.channel)
            try:
                if channel is None:
                    self.registry.give_up_delivery(
                        incident.id,
                        delivery.message,
                        delivery.channel,
                        error=f"channel '{delivery.channel}' is no longer in alerts.channels of featurestore.yaml",
                    )
                    continue
                error = _send(channel, message_of(incident, delivery.message))
                if error is None:
                    self.registry.record_delivery(incident.id, delivery.message, channel.name, status="sent", at=now)
                    log.info("alert #%d %s: sent to channel '%s'", incident.id, delivery.message, channel.name)
                    continue
                failing.add(channel.name)
                attempt = delivery.attempts + 1
                status = "failed" if attempt >= self.max_attempts else "retrying"
                self.registry.record_delivery(
                    incident.id, delivery.message, channel.name, status=status, at=now, error=error
                )
                log.warning(
                    "alert #%d %s: sending to channel '%s' failed (attempt %d of %d; %s): %s",
                    incident.id,
                    delivery.message,
                    channel.name,
                    attempt,
                    self.max_attempts,
                    "given up" if status == "failed" else "tried again at the next check",
                    error,
                )
            except Exception as err:  # the registry, while recording: the next check tries again
                log.error("alerts of project '%s': recording a delivery failed: %s", self.project, _text(err))
                return


def _send(channel: AlertChannel, message: AlertMessage) -> str | None:
    """None when sent, else the error (redacted)."""
    try:
        channel.send(message)
    except AlertDeliveryError as err:
        return str(err)
    except Exception as err:  # a channel's bug must not stop the others, nor the scheduler
        return _text(err)
    return None


def message_of(incident: AlertIncident, message: str) -> AlertMessage:
    """The ``opened`` or ``cleared`` message of an incident."""
    cleared = message == "cleared"
    detail = (incident.cleared_detail or {}) if cleared else incident.detail
    summary = str(detail.get("summary", ""))
    title = "RESOLVED" if cleared else KIND_TITLES.get(incident.kind, incident.kind.upper())
    lines = [
        summary,
        "",
        f"Project: {incident.project}",
        f"Feature view: {incident.view}",
        f"Incident: #{incident.id} ({incident.kind}), opened {incident.opened_at.isoformat()}"
        + (f", cleared {incident.cleared_at.isoformat()}" if cleared and incident.cleared_at else ""),
    ]
    if cleared:
        lines.append(f"It was: {incident.summary}")
    lines += ["", "List incidents with 'featurestore alerts', GET /v1/alerts, or the registry UI's Alerts page."]
    return AlertMessage(
        subject=f"[featurestore {incident.project}] {title}: {incident.view}",
        body="\n".join(lines) + "\n",
        payload={
            "event": f"alert.{message}",
            "project": incident.project,
            "view": incident.view,
            "kind": incident.kind,
            "incident": incident.id,
            "opened_at": incident.opened_at.isoformat(),
            "cleared_at": incident.cleared_at.isoformat() if cleared and incident.cleared_at else None,
            "summary": summary,
            "detail": detail,
        },
    )


def _duration(value: timedelta) -> str:
    """A duration to the second, as timedelta writes it: ``3:00:00``, ``1 day, 2:00:00``."""
    return str(timedelta(seconds=round(value.total_seconds())))


def _text(err: BaseException) -> str:
    return redact(f"{type(err).__name__}: {err}")

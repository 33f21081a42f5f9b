"""When a feature view is due: its ``schedule`` (a cron expression or an interval) as due times.

A view's ``schedule`` is a five-field cron expression (``"0 * * * *"``: every hour on the hour),
read in UTC, or a ``timedelta`` (an interval, counted from 1970-01-01 00:00 UTC, so that every
process computes the same due times: ``timedelta(hours=1)`` is due on every hour). APScheduler's
triggers compute the due times (``CronTrigger.from_crontab``, ``IntervalTrigger``); they load on
first use, so importing the definitions stays fast.

Pure functions, no I/O: the scheduler (``etl/scheduler.py``) and ``featurestore schedule`` use
them, and definitions use :func:`schedule_problems` to validate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeAlias

Schedule: TypeAlias = str | timedelta
"""A cron expression (UTC) or an interval."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Where intervals are counted from."""

_TICK = timedelta(microseconds=1)


def schedule_problems(view: str, schedule: Schedule | None, freshness: timedelta | None) -> list[str]:
    """What is wrong with a view's ``schedule`` and ``freshness``; empty when nothing is."""
    problems: list[str] = []
    if isinstance(schedule, str):
        try:
            _trigger(schedule)
        except ValueError as err:
            problems.append(
                f"Feature view '{view}' has schedule '{schedule}', which is not a cron expression ({err}); "
                "give five fields, minute hour day month weekday, e.g. schedule='0 * * * *' (every hour, UTC), "
                "or an interval such as schedule=timedelta(hours=1)"
            )
    elif isinstance(schedule, timedelta) and schedule < timedelta(seconds=1):
        problems.append(
            f"Feature view '{view}' has schedule {schedule}, an interval under one second: "
            "give a positive interval, e.g. schedule=timedelta(hours=1)"
        )
    if freshness is not None and freshness <= timedelta(0):
        problems.append(
            f"Feature view '{view}' has freshness {freshness}, which must be positive: e.g. freshness=timedelta(hours=2)"
        )
    return problems


def overdue_after(freshness: timedelta | None, ttl: timedelta) -> timedelta:
    """The age beyond which a view's newest data is stale: its ``freshness``, else its TTL."""
    return freshness if freshness is not None else ttl


def is_stale(newest: datetime | None, freshness: timedelta | None, ttl: timedelta, now: datetime) -> bool:
    """Whether a view whose newest published event time is ``newest`` is stale at ``now``: older
    than :func:`overdue_after`. A view that has published nothing is not stale (it has no lag, as
    in the metrics; failing runs are what says it is not being fed). The one rule of the UI, the
    CLI's ``schedule``, the alerts and the catalog."""
    return newest is not None and now - newest > overdue_after(freshness, ttl)


def schedule_text(schedule: Schedule | None) -> str:
    """A schedule as people read it: the cron expression, or ``every 1:00:00``."""
    if schedule is None:
        return "-"
    return schedule if isinstance(schedule, str) else f"every {schedule}"


def schedule_to_spec(schedule: Schedule | None) -> dict[str, Any] | None:
    """The registry's form of a schedule: ``{"cron": ...}`` or ``{"interval_seconds": ...}``."""
    if schedule is None:
        return None
    if isinstance(schedule, str):
        return {"cron": schedule}
    return {"interval_seconds": schedule.total_seconds()}


def schedule_from_spec(spec: Any) -> Schedule | None:
    """The schedule of a registry spec (``None`` for specs written before schedules existed)."""
    if not spec:
        return None
    if "cron" in spec:
        return str(spec["cron"])
    return timedelta(seconds=spec["interval_seconds"])


def next_due(schedule: Schedule, after: datetime) -> datetime:
    """The first due time strictly after ``after``."""
    found = _trigger(schedule).get_next_fire_time(None, _utc(after) + _TICK)
    if found is None:  # a cron expression that never fires again (e.g. February 30th)
        return datetime.max.replace(tzinfo=UTC)
    return _utc(found)


def due_times(schedule: Schedule, after: datetime | None, until: datetime, *, limit: int) -> tuple[list[datetime], int]:
    """The latest ``limit`` due times in ``(after, until]``, oldest first, and how many earlier
    due times of that span were left out. Without ``after``: the latest ``limit`` due times at or
    before ``until`` (and 0 left out: nothing was missed). Looks back in growing steps from
    ``until``, so a per-minute schedule years behind costs ``limit`` due times, not millions."""
    until = _utc(until)
    low = None if after is None else _utc(after)
    if limit < 1 or (low is not None and low >= until):
        return [], 0
    span = timedelta(hours=1)
    while True:
        start = until - span
        reached = low is not None and start <= low
        found = _between(schedule, low if reached and low is not None else start, until, cap=limit + 1)
        if len(found) > limit or reached or span > timedelta(days=366 * 200):
            break
        span *= 4
    if len(found) <= limit:
        return found, 0
    kept = found[-limit:]
    skipped = 0 if low is None else _count_between(schedule, low, kept[0] - _TICK)
    return kept, skipped


def _between(schedule: Schedule, low: datetime, high: datetime, *, cap: int) -> list[datetime]:
    """Due times in ``(low, high]``, the latest ``cap`` of them, oldest first."""
    out: list[datetime] = []
    at = low
    while True:
        at = next_due(schedule, at)
        if at > high:
            return out
        out.append(at)
        if len(out) > cap:
            out.pop(0)


def _count_between(schedule: Schedule, low: datetime, high: datetime) -> int:
    if isinstance(schedule, timedelta):
        step = schedule.total_seconds()
        return max(0, int((high - EPOCH).total_seconds() // step) - int((low - EPOCH).total_seconds() // step))
    count, at = 0, low
    while count < 10_000:  # counted for a log line only: beyond this, "10,000" is near enough
        at = next_due(schedule, at)
        if at > high:
            break
        count += 1
    return count


@lru_cache(maxsize=256)
def _trigger(schedule: Schedule) -> Any:
    if isinstance(schedule, str):
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(_apscheduler_weekdays(schedule), timezone=UTC)
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(seconds=schedule.total_seconds(), start_date=EPOCH, timezone=UTC)


def _apscheduler_weekdays(expression: str) -> str:
    """The expression with its weekday field in APScheduler's numbering. Cron counts weekdays
    from Sunday (0 or 7), APScheduler 3 from Monday (0) and ``from_crontab`` passes the numbers
    through: ``"30 6 * * 1"`` would run on Tuesdays. Numbers (ranges and steps too) become
    APScheduler's; names (``mon-fri``) mean the same to both and are kept."""
    fields = expression.split()
    if len(fields) != 5:
        return expression  # from_crontab's own error names the problem
    parts: list[str] = []
    for part in fields[4].split(","):
        body, _, step_text = part.partition("/")
        if not (step_text.isdigit() or not step_text):
            return expression
        step = int(step_text or 1)
        if body == "*":
            if not step_text:
                parts.append(part)
                continue
            low, high = 0, 6
        elif body.isdigit():
            low = high = int(body)
            if step_text:
                high = 6
        elif "-" in body and all(b.isdigit() for b in body.split("-", 1)):
            low, high = (int(b) for b in body.split("-", 1))
        else:
            parts.append(part)  # names: the same meaning in both
            continue
        if step < 1 or not 0 <= low <= high <= 7:
            return expression  # let from_crontab refuse it
        parts.extend(str((day - 1) % 7) for day in range(low, high + 1, step))
    fields[4] = ",".join(dict.fromkeys(parts))
    return " ".join(fields)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"due times are computed for timezone-aware times, got {value!r}")
    return value.astimezone(UTC)

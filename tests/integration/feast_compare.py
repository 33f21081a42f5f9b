"""The differential tests' comparator: every difference between our answers and Feast's, each
classified as explained by our documented semantics, or not.

Explained (README, "Coming from Feast"):

* ``feast-drops-row``: Feast's ``get_historical_features`` (file offline store) leaves out a spine
  row for which a feature view has no row of the entity within its TTL at or before the spine's
  time; we keep every spine row, with nulls for that view's features (checked: ours are null there).
* ``feast-present-missing``: Feast's Redis online store answers ``PRESENT`` with a null value and no
  event time for an entity it does not hold; we answer ``NOT_FOUND``. Checked: the entity has no
  offline row of the view at all.
* ``feast-present-null``: a stored null is ``PRESENT`` to Feast, ``NULL_VALUE`` to us. Checked: the
  entity's newest offline row holds a null, within the TTL, at the event time both give.
* ``feast-no-online-ttl``: a value whose row is older than its view's TTL: Feast serves it as
  ``PRESENT``; we withhold it, ``OUTSIDE_MAX_AGE`` with a null (TTL applies online as offline).
  Checked: Feast's value and event time are those of the entity's newest offline row, and that
  row's time is past the TTL.

Every check is against the data (``stored``: each entity's newest offline row), never against one
server's answer alone: a wrong value from either side is unexplained.

Anything else is unexplained and fails the test, listed in the assertion message.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

NO_TIME = "1970-01-01T00:00:00Z"
EXPLANATIONS = {
    "feast-drops-row": "Feast's get_historical_features drops a spine row when a view has no row of the entity "
    "within its TTL before the row's time; we keep it, with nulls",
    "feast-present-missing": "Feast's Redis store says PRESENT (null, no time) for an entity it does not hold; "
    "we say NOT_FOUND",
    "feast-present-null": "Feast says PRESENT for a stored null; we say NULL_VALUE",
    "feast-no-online-ttl": "Feast serves values past their view's TTL online as PRESENT; we withhold them "
    "(OUTSIDE_MAX_AGE, null)",
}


@dataclass(frozen=True)
class Difference:
    where: str
    ours: Any
    feast: Any
    explained_by: str | None
    """A key of EXPLANATIONS, or None: a difference our semantics do not explain."""


def same_value(a: Any, b: Any) -> bool:
    """Equal values, null and NaN alike (Feast's frames carry a missing float as NaN)."""
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) and type(a) is type(b)
    return bool(a == b)


Stored = Mapping[str, Mapping[Any, tuple[Any, datetime]]]
"""Per feature name (as a lookup names it), per entity key: the value and event time of the
entity's newest offline row of the feature's view; an entity without any row is absent."""


def compare_online(
    ours: Mapping[str, Mapping[str, list[Any]]],
    feast: Mapping[str, Mapping[str, list[Any]]],
    *,
    keys: Sequence[Any],
    ttl: Mapping[str, timedelta],
    stored: Stored,
    now: datetime,
    label: str,
) -> list[Difference]:
    """Two lookups in Feast's shape (name → values, statuses and, when given, event_timestamps),
    entity by entity. ``ttl``: each feature's view's TTL; ``stored``: what the data holds (the
    explanations are checked against it); ``now``: the time of the lookups."""
    out: list[Difference] = []
    if set(ours) != set(feast):
        out.append(Difference(f"{label}: names", sorted(ours), sorted(feast), None))
    for name in [n for n in ours if n in feast]:
        a, b = ours[name], feast[name]
        times_a = a.get("event_timestamps") or [None] * len(keys)
        times_b = b.get("event_timestamps") or [None] * len(keys)
        for i, key in enumerate(keys):
            mine = (a["values"][i], a["statuses"][i], times_a[i])
            theirs = (b["values"][i], b["statuses"][i], times_b[i])
            if same_value(mine[0], theirs[0]) and mine[1:] == theirs[1:]:
                continue
            row = stored.get(name, {}).get(key)
            reason = _online_reason(mine, theirs, row, ttl.get(name), now)
            out.append(Difference(f"{label}: {name} of {key}", mine, theirs, reason))
    return out


def _time(text: str | None) -> datetime | None:
    """An event time as the answers give it; None for none (or Feast's 1970 stand-in)."""
    if text is None or text == NO_TIME:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _online_reason(
    mine: tuple[Any, str, str | None],
    theirs: tuple[Any, str, str | None],
    row: tuple[Any, datetime] | None,
    ttl: timedelta | None,
    now: datetime,
) -> str | None:
    """The documented reason for a difference, each checked against the entity's newest offline
    ``row`` (None: the entity has no row of the view), or None."""
    (value, status, time), (f_value, f_status, f_time) = mine, theirs
    if f_status != "PRESENT":
        return None
    if row is None:
        # Feast's stand-in for an entity it does not hold; ours: not found.
        no_times = _time(time) is None and _time(f_time) is None
        if status == "NOT_FOUND" and value is None and same_value(f_value, None) and no_times:
            return "feast-present-missing"
        return None
    stored_value, stored_time = row
    # Both give the stored row's time (a side that gives no times is not checked on them).
    times_are_stored = all(t is None or _time(t) == stored_time for t in (time, f_time))
    if ttl is None or not times_are_stored:
        return None
    past_ttl = now - stored_time > ttl
    stored_null = same_value(stored_value, None)
    if status == "NULL_VALUE" and not past_ttl and value is None and stored_null and same_value(f_value, None):
        return "feast-present-null"
    if status == "OUTSIDE_MAX_AGE" and past_ttl and value is None and same_value(f_value, stored_value):
        return "feast-no-online-ttl"
    return None


def compare_training(
    ours: Sequence[Mapping[str, Any]],
    feast: Sequence[Mapping[str, Any]],
    *,
    row_key: str,
    features: Mapping[str, str],
    has_row_in_ttl: Mapping[str, Mapping[Any, bool]],
) -> list[Difference]:
    """Two training sets row by row, matched on ``row_key`` (a spine column both keep).
    ``features``: output column → its view; ``has_row_in_ttl``: per view, per spine row key,
    whether the entity has a row of the view within the view's TTL at or before the spine's time
    (from the data)."""
    out: list[Difference] = []
    theirs_by_key: dict[Any, Mapping[str, Any]] = {}
    for row in feast:
        if row[row_key] in theirs_by_key:
            out.append(Difference(f"training row {row[row_key]}", None, dict(row), None))  # a row twice
        theirs_by_key[row[row_key]] = row
    ours_keys = {row[row_key] for row in ours}
    for extra in sorted(set(theirs_by_key) - ours_keys):
        out.append(Difference(f"training row {extra}: only Feast's", None, dict(theirs_by_key[extra]), None))
    for row in ours:
        key = row[row_key]
        theirs = theirs_by_key.get(key)
        if theirs is None:
            empty_views = [v for v in set(features.values()) if not has_row_in_ttl[v][key]]
            nulls_there = all(row[f] is None for f, v in features.items() if v in empty_views)
            reason = "feast-drops-row" if empty_views and nulls_there else None
            out.append(Difference(f"training row {key}: not in Feast's", dict(row), None, reason))
            continue
        for f in features:
            if not same_value(row[f], theirs[f]):
                out.append(Difference(f"training row {key}: {f}", row[f], theirs[f], None))
    return out


def report(differences: Sequence[Difference], compared: Mapping[str, int]) -> str:
    """A readable account: what was compared, the explained differences by reason (with one
    example each), and every unexplained one (the first 40)."""
    lines = ["Compared: " + ", ".join(f"{n:,} {what}" for what, n in compared.items())]
    explained = Counter(d.explained_by for d in differences if d.explained_by)
    for reason, n in explained.most_common():
        example = next(d for d in differences if d.explained_by == reason)
        lines.append(
            f"  explained x{n}: {EXPLANATIONS[reason]} (e.g. {example.where}: ours {example.ours!r}, Feast {example.feast!r})"
        )
    unexplained = [d for d in differences if d.explained_by is None]
    lines.append(f"Unexplained: {len(unexplained)}")
    lines.extend(f"  {d.where}: ours {d.ours!r}, Feast {d.feast!r}" for d in unexplained[:40])
    return "\n".join(lines)

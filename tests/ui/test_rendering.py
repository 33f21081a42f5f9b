"""The UI's building blocks: times in UTC with their age, SVG charts and the lineage layout."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

from registry_ui import charts
from registry_ui.formats import duration_text, number_text, relative_age, ttl_text, utc_iso, utc_text
from registry_ui.lineage_graph import layout, related
from registry_ui.pages import Links, hide_password

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def test_times_are_shown_in_utc_with_their_relative_age() -> None:
    paris = timezone(timedelta(hours=1))
    assert utc_text(datetime(2024, 3, 10, 13, 30, tzinfo=paris)) == "2024-03-10 12:30:00 UTC"
    assert utc_text(datetime(2024, 3, 10, 12, 30)) == "2024-03-10 12:30:00 UTC"  # naive: taken as UTC
    assert utc_iso(datetime(2024, 3, 10, 13, 30, tzinfo=paris)) == "2024-03-10T12:30:00Z"
    assert utc_text(None) == "—" and utc_text(date(2024, 3, 1)) == "2024-03-01"
    assert relative_age(NOW - timedelta(seconds=2), NOW) == "just now"
    assert relative_age(NOW - timedelta(seconds=45), NOW) == "45 s ago"
    assert relative_age(NOW - timedelta(minutes=12), NOW) == "12 min ago"
    assert relative_age(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert relative_age(NOW - timedelta(days=5), NOW) == "5 d ago"
    assert relative_age(NOW + timedelta(hours=2), NOW) == "in 2 h"


def test_durations_ttls_and_numbers() -> None:
    assert duration_text(0.4213) == "0.42 s" and duration_text(12.34) == "12.3 s" and duration_text(240) == "4 min"
    assert duration_text(None) is None
    assert ttl_text(timedelta(days=2)) == "2 days" and ttl_text(timedelta(hours=1)) == "1 hour"
    assert ttl_text(timedelta(seconds=90)) == "90 seconds"
    assert number_text(1234567) == "1,234,567" and number_text(0.123456) == "0.1235" and number_text(None) == "—"
    assert number_text(2.0) == "2" and number_text(12345.678) == "12,346"


def test_histogram_has_a_bar_per_bin_with_its_range_and_count() -> None:
    svg = str(charts.histogram([0, 10, 20, 30], [5, 0, 2], title="spend <30d>"))
    assert svg.count("<rect") == 3
    assert "<title>0 to 10: 5</title>" in svg
    assert 'role="img"' in svg and "spend &lt;30d&gt;" in svg  # labels are escaped
    assert "no histogram" in str(charts.histogram([0, 1], [1, 2], title="bad"))


def test_trend_draws_points_in_order_and_leaves_gaps_for_missing_values() -> None:
    svg = str(charts.trend([("run 1", 1.0), ("run 2", None), ("run 3", 3.0), ("run 4", 2.0)], title="mean"))
    assert svg.count("<circle") == 3
    assert svg.count("<polyline") == 2  # the missing value splits the line
    assert "latest 2" in svg and "min 1 · max 3" in svg
    assert "no values yet" in str(charts.trend([("run 1", None)], title="mean"))
    flat = str(charts.trend([("a", 5.0), ("b", 5.0)], title="flat"))
    assert flat.count("<circle") == 2


def test_daily_bars_have_one_bar_per_day() -> None:
    days = [(date(2024, 3, 1) + timedelta(days=i), i * 10) for i in range(7)]
    svg = str(charts.daily_bars(days, title="reads"))
    assert svg.count("<rect") == 7
    assert "<title>2024-03-07: 60 reads</title>" in svg
    assert "210 reads over 7 days" in svg


def test_lineage_layout_puts_kinds_in_columns_left_to_right() -> None:
    edges = [
        (("source", "raw"), ("source", "derived")),
        (("source", "derived"), ("feature_view", "v1")),
        (("source", "raw"), ("feature_view", "v2")),
        (("feature_view", "v1"), ("feature_service", "svc")),
        (("feature_view", "v2"), ("feature_service", "svc")),
        (("feature_service", "svc"), ("model", "m")),
    ]
    graph = layout(edges, href=Links("/ui").entry, extra_nodes=[("feature_view", "lonely")])
    column = {(n.kind, n.name): n.column for n in graph.nodes}
    assert column[("source", "raw")] < column[("source", "derived")]
    assert column[("feature_view", "v1")] == column[("feature_view", "v2")] == column[("feature_view", "lonely")]
    assert column[("source", "derived")] < column[("feature_view", "v1")] < column[("feature_service", "svc")]
    assert column[("feature_service", "svc")] < column[("model", "m")]
    svg = str(graph.svg)
    assert svg.count('class="edge"') == len(edges)
    assert 'href="/ui/models/m"' in svg and 'href="/ui/sources/raw"' in svg
    assert re.search(r"<text[^>]*>Feature services</text>", svg)
    focused = layout(edges, href=Links().entry, focus=("feature_view", "v2"))
    assert {n.name for n in focused.nodes} == {"raw", "v2", "svc", "m"}
    assert [n.name for n in focused.nodes if n.focus] == ["v2"]
    assert related(edges, ("model", "m")) == {n for e in edges for n in e}


def test_links_are_shareable_urls_under_the_mount_point() -> None:
    links = Links("/ui")
    assert links.home() == "/ui/"
    assert links.search(q="spend 30d", tag="") == "/ui/?q=spend+30d"
    assert links.view("customer_spend", "spend_30d") == "/ui/views/customer_spend#feature-spend_30d"
    assert links.feature("customer_spend:spend_30d") == "/ui/views/customer_spend#feature-spend_30d"
    assert links.lineage(("model", "m 1")) == "/ui/lineage?focus=model%3Am+1"
    assert links.usage(days=7, view=None) == "/ui/usage?days=7"
    assert Links().view("a/b") == "/views/a%2Fb"


def test_passwords_never_show() -> None:
    assert (
        hide_password("postgresql+psycopg://fs:secret@db:5432/registry")
        == "postgresql+psycopg://fs:***@db:5432/registry"
    )
    assert "secret" not in hide_password("rediss://:secret@redis.internal:6380/0")


def test_templates_and_styles_ship_in_the_package() -> None:
    import fnmatch
    import tomllib
    from pathlib import Path

    import registry_ui

    root = Path(registry_ui.__file__).parent
    patterns = tomllib.loads((root.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "registry_ui"
    ]
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert {"templates/base.html", "static/style.css", "py.typed"} <= set(files)
    for f in files:
        assert any(fnmatch.fnmatch(f, pattern) for pattern in patterns), f"{f} would be left out of the wheel"

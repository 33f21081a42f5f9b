"""Feature duplicates: what ``featurestore apply`` found (:mod:`featurestore.duplicates`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.duplicates import DuplicateFinding
from featurestore.registry.locks import lock_name
from featurestore.registry.schema import feature_duplicates_t, views_t


class Duplicates:
    """Registry mixin: features found to compute what another does."""

    _engine: Engine

    def record_duplicates(
        self, project: str, findings: Iterable[DuplicateFinding], *, checked: Iterable[str], views: Iterable[str]
    ) -> None:
        """In one transaction: forget the findings naming a ``checked`` view on either side
        (checked again) and those naming a view not in ``views`` (removed), then keep ``findings``."""
        c = feature_duplicates_t.c
        checked, views = list(checked), list(views)
        rows = {(f.feature, f.duplicate_of): f for f in findings}
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            # Two applies recording at once would both delete, then both insert a pair: the
            # second fails on the primary key. The lock makes the second delete the first's rows.
            lock_name(conn, f"featurestore.registry:feature_duplicates:{project}")
            mine = c.project == project
            conn.execute(
                feature_duplicates_t.delete().where(
                    mine,
                    sa.or_(
                        c.view.in_(checked),
                        c.duplicate_view.in_(checked),
                        c.view.not_in(views),
                        c.duplicate_view.not_in(views),
                    ),
                )
            )
            if rows:  # a pair found again by a check of the other side replaces its row
                pairs = [sa.and_(c.feature == a, c.duplicate_of == b) for a, b in rows]
                conn.execute(feature_duplicates_t.delete().where(mine, sa.or_(*pairs)))
                conn.execute(
                    feature_duplicates_t.insert(),
                    [
                        {
                            "project": project,
                            "feature": f.feature,
                            "duplicate_of": f.duplicate_of,
                            "view": f.view,
                            "duplicate_view": f.duplicate_of.partition(":")[0],
                            "owner": f.owner[:200],
                            "kind": f.kind,
                            "figure": f.figure,
                            "rows": f.rows,
                            "found_at": now,
                        }
                        for f in rows.values()
                    ],
                )

    def list_duplicates(self, project: str, view: str | None = None) -> list[DuplicateFinding]:
        """The project's recorded duplicates (those involving ``view`` on either side, when
        given), by feature."""
        c = feature_duplicates_t.c
        query = sa.select(c.feature, c.duplicate_of, c.owner, c.kind, c.figure, c.rows).where(c.project == project)
        if view is not None:
            query = query.where(sa.or_(c.view == view, c.duplicate_view == view))
        with self._engine.connect() as conn:
            found = conn.execute(query.order_by(c.feature, c.duplicate_of)).all()
        return [
            DuplicateFinding(feature=f, duplicate_of=d, owner=o, kind=k, figure=fig, rows=r)
            for f, d, o, k, fig, r in found
        ]

    def view_registration_times(self, project: str) -> dict[str, datetime]:
        """When each of the project's feature views was first registered: of two duplicates,
        the one registered first is the original."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(views_t.c.name, views_t.c.created_at).where(views_t.c.project == project))
            return {name: at for name, at in rows}

    def prune_duplicates(self, project: str) -> int:
        """Forget the findings naming a view the registry no longer holds (an apply that did
        not check, ``--duplicates off``, removed it); how many. Writes only when there are some."""
        c = feature_duplicates_t.c
        current = sa.select(views_t.c.name).where(views_t.c.project == project)
        stale = sa.and_(c.project == project, sa.or_(c.view.not_in(current), c.duplicate_view.not_in(current)))
        with self._engine.connect() as conn:
            if (
                conn.execute(sa.select(sa.func.count()).select_from(feature_duplicates_t).where(stale)).scalar_one()
                == 0
            ):
                return 0
        with self._engine.begin() as conn:
            return conn.execute(feature_duplicates_t.delete().where(stale)).rowcount

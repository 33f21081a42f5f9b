"""Source probes: the latest probe of each source (:mod:`featurestore.source_probe`)."""

from __future__ import annotations

import json
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from featurestore.registry.locks import lock_name
from featurestore.registry.schema import source_probes_t
from featurestore.source_probe import SourceProbe


class SourceProbes:
    """Registry mixin: each source's latest probe."""

    _engine: Engine

    def record_source_probes(self, project: str, probes: Iterable[SourceProbe]) -> None:
        """Keep ``probes`` as their sources' latest, in one transaction."""
        c = source_probes_t.c
        probes = list(probes)
        if not probes:
            return
        with self._engine.begin() as conn:
            # Two records of one source at once would both delete nothing, then both insert: the
            # second fails on the primary key. The lock makes the second delete the first's row.
            lock_name(conn, f"featurestore.registry:source_probes:{project}")
            conn.execute(source_probes_t.delete().where(c.project == project, c.source.in_([p.source for p in probes])))
            conn.execute(
                source_probes_t.insert(),
                [
                    {
                        "project": project,
                        "source": p.source,
                        "status": p.status,
                        "probed_at": p.probed_at,
                        "probe": json.dumps(p.to_dict(), sort_keys=True),
                    }
                    for p in probes
                ],
            )

    def prune_source_probes(self, project: str, keep: Iterable[str]) -> int:
        """Forget the probes of sources not in ``keep`` (sources an apply removed); how many."""
        c = source_probes_t.c
        with self._engine.begin() as conn:
            gone = conn.execute(source_probes_t.delete().where(c.project == project, c.source.not_in(list(keep))))
        return int(gone.rowcount or 0)

    def get_source_probe(self, project: str, source: str) -> SourceProbe | None:
        """The source's latest probe, or None if it was never probed."""
        c = source_probes_t.c
        query = sa.select(c.probe).where(c.project == project, c.source == source)
        with self._engine.connect() as conn:
            text = conn.execute(query).scalar_one_or_none()
        return None if text is None else SourceProbe.from_dict(json.loads(text))

    def list_source_probes(self, project: str) -> list[SourceProbe]:
        """Every source's latest probe in the project, by source name."""
        c = source_probes_t.c
        query = sa.select(c.probe).where(c.project == project).order_by(c.source)
        with self._engine.connect() as conn:
            return [SourceProbe.from_dict(json.loads(t)) for (t,) in conn.execute(query)]

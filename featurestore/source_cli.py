"""``featurestore source check``: probe sources (see :mod:`featurestore.source_probe`).

A click group added to the ``featurestore`` command by :mod:`featurestore.cli`. Sources are
taken from the project's definition files (applied or not), like ``featurestore validate``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from featurestore.source_probe import SourceProbe


@click.group("source")
def source_commands() -> None:
    """Sources: check that they are reachable and readable, and what they hold."""


@source_commands.command("check")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the probes as JSON.")
@click.option("--no-record", is_flag=True, help="Keep the probes out of the registry.")
@click.pass_obj
def check(state: Any, names: tuple[str, ...], as_json: bool, no_record: bool) -> None:
    """Probe the sources NAMES (default: every source of the project): reachable, readable,
    their columns, row count, event-time range, partitions and a few sample rows (none of the
    columns tagged sensitive:COLUMN). A probe is kept in the registry as the source's latest
    when the source is defined in the files as it was applied (else the registry would show it
    against a source that reads something else); the others are said not to be recorded.
    Exits with status 1 when a source is missing, unreadable or fails."""
    from featurestore.definitions import Project
    from featurestore.errors import NotFoundError
    from featurestore.project_files import load_definitions

    store = state.store()
    sources = {s.name: s for s in Project.collect(load_definitions(store.config)).sources}
    for name in names:
        if name not in sources:
            raise NotFoundError("source", name, project=store.project, candidates=sources)
    chosen = [sources[n] for n in names] if names else list(sources.values())
    probes = store.check_sources(chosen, record=False)
    if not no_record:
        applied = {s.name: s for s in store.registry.list_sources(store.project)}
        kept = []
        for source, probe in zip(chosen, probes, strict=True):
            why = _unlike_applied(source, applied.get(source.name))
            if why is None:
                kept.append(probe)
            else:  # on stderr: --json output stays JSON
                click.echo(f"note: the probe of source '{source.name}' is not recorded: {why}", err=True)
        store.registry.record_source_probes(store.project, kept)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in probes], indent=2))
    else:
        click.echo("\n".join(p.render() for p in probes))
    if any(not p.ok for p in probes):
        sys.exit(1)


def _unlike_applied(source: Any, applied: Any) -> str | None:
    """Why a probe of ``source`` (from the definition files) must not stand as the probe of the
    applied source, or None when both read the same and hide the same columns."""
    from featurestore.definitions import source_definition
    from featurestore.source_probe import sensitive_columns

    if applied is None:
        return "the source is not applied; run 'featurestore apply' to apply and probe it"
    if source_definition(source) != source_definition(applied) or set(sensitive_columns(source)) != set(
        sensitive_columns(applied)
    ):
        return (
            "its definition in the project's files differs from the applied one (what it reads, or its "
            "sensitive columns); run 'featurestore apply' to apply and probe it"
        )
    return None


class SourceProbesOnApply:
    """Apply's probes of every source of ``objects``: started in a thread when entered, so they
    run while the definitions are validated and applied; :meth:`record` keeps them in the
    registry and prints a warning per source that is not ok, naming it and what to do. With
    ``strict``, entering waits for them and raises (nothing applied) when one is not ok."""

    def __init__(self, store: Any, objects: Sequence[object], *, strict: bool) -> None:
        from featurestore.definitions import Project

        self.store = store
        self.sources = Project.collect(objects).sources
        self.strict = strict
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-probes")
        self._future: Future[list[SourceProbe]] | None = None

    def __enter__(self) -> SourceProbesOnApply:
        self._future = self._pool.submit(self.store.check_sources, self.sources, record=False)
        if self.strict:
            bad = [p for p in self._future.result() if not p.ok]
            if bad:
                self._warn(bad)
                self._pool.shutdown()
                raise click.ClickException(
                    f"nothing applied: {len(bad)} source(s) failed their probe (--strict); fix them, "
                    "or apply without --strict"
                )
        return self

    def record(self) -> list[SourceProbe]:
        assert self._future is not None
        probes = self._future.result()
        self.store.registry.record_source_probes(self.store.project, probes)
        self.store.registry.prune_source_probes(self.store.project, [s.name for s in self.sources])
        self._warn([p for p in probes if not p.ok])
        return probes

    def _warn(self, bad: Sequence[SourceProbe]) -> None:
        for p in bad:
            click.secho(f"warning: source '{p.source}' is {p.status}: {p.message}", fg="yellow", err=True)

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)

"""Catalog search: find features, feature views, entities and feature services by what they are
called, what they mean, their tags, their owners and their entities.

Pure logic over the registry's definitions, shared by the datamart API and the registry UI.
Ranking, best first: the exact name, then a name containing the query, then a description, tag,
owner, entity or (for a feature) view name containing it; for several words, every word found
somewhere in the entry. Ties go to names starting with the query, then to the more read entries
(when the caller passes their reads), then shorter names, then feature views before features,
feature services and entities. A feature found to duplicate another (see
:mod:`featurestore.duplicates`) is placed right after the first of them the search ranks, even
when the query matches it alone, with ``duplicate`` among its matched fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from featurestore.duplicates import DUPLICATE_KINDS
from featurestore.errors import InvalidRequestError, did_you_mean
from featurestore.registry import Registry

CatalogKind = Literal["feature_view", "feature", "feature_service", "entity"]
KINDS: tuple[CatalogKind, ...] = ("feature_view", "feature", "feature_service", "entity")

EXACT_NAME = 3
NAME_CONTAINS = 2
TEXT_CONTAINS = 1


@dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    """One searchable object. A feature is named ``view:feature``, carries its view's name and
    its type, and has its view's owner (when it has none of its own) and tags besides its own.
    ``entities`` are the entities a feature view (or a feature, through its view) describes."""

    kind: CatalogKind
    name: str
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    view: str | None = None
    dtype: str | None = None
    entities: tuple[str, ...] = ()
    duplicate_of: tuple[str, ...] = ()
    """Features this feature was found to compute again (exact, equal or correlated)."""
    duplicated_by: tuple[str, ...] = ()
    """Features found to compute again what this feature does."""

    @property
    def duplicates(self) -> tuple[str, ...]:
        """Every feature found to compute the same as this one, either way."""
        return tuple(dict.fromkeys([*self.duplicate_of, *self.duplicated_by]))

    @property
    def short_name(self) -> str:
        """The name without its view: ``spend_30d`` for ``customer_spend:spend_30d``."""
        return self.name.partition(":")[2] if self.kind == "feature" else self.name


@dataclass(frozen=True)
class SearchHit:
    """An entry that matched, its rank (higher is better) and the fields that matched."""

    entry: CatalogEntry
    score: int
    matched: tuple[str, ...]


def catalog_entries(registry: Registry, project: str) -> list[CatalogEntry]:
    """Every feature view, feature, feature service and entity of the project."""
    views = registry.list_feature_views(project)
    view_tags = {v.name: v.tags for v in views}
    view_entities = {v.name: tuple(e.name for e in v.resolved_entities()) for v in views}
    duplicate_of: dict[str, list[str]] = {}
    duplicated_by: dict[str, list[str]] = {}
    found_pairs = registry.list_duplicates(project)
    # Exact duplicates first, then equal, then correlated ones.
    for found in sorted(found_pairs, key=lambda f: (DUPLICATE_KINDS.index(f.kind), f.feature, f.duplicate_of)):
        duplicate_of.setdefault(found.feature, []).append(found.duplicate_of)
        duplicated_by.setdefault(found.duplicate_of, []).append(found.feature)
    entries = [
        CatalogEntry(
            kind="feature_view",
            name=v.name,
            description=v.description,
            owner=v.owner,
            tags=v.tags,
            entities=view_entities[v.name],
        )
        for v in views
    ]
    for f in registry.list_features(project):
        tags = tuple(dict.fromkeys([*f.tags, *view_tags.get(f.view, ())]))
        entries.append(
            CatalogEntry(
                kind="feature",
                name=f"{f.view}:{f.name}",
                description=f.description,
                owner=f.owner,
                tags=tags,
                view=f.view,
                dtype=f.dtype,
                entities=view_entities.get(f.view, ()),
                duplicate_of=tuple(duplicate_of.get(f"{f.view}:{f.name}", ())),
                duplicated_by=tuple(duplicated_by.get(f"{f.view}:{f.name}", ())),
            )
        )
    entries.extend(
        CatalogEntry(kind="feature_service", name=s.name, description=s.description, owner=s.owner, tags=s.tags)
        for s in registry.list_feature_services(project)
    )
    entries.extend(
        CatalogEntry(kind="entity", name=e.name, description=e.description, owner=e.owner, tags=e.tags)
        for e in registry.list_entities(project)
    )
    return entries


def _match(entry: CatalogEntry, query: str, words: Sequence[str]) -> tuple[int, tuple[str, ...]]:
    name, short = entry.name.lower(), entry.short_name.lower()
    if query in (name, short):
        return EXACT_NAME, ("name",)
    if query in short:
        return NAME_CONTAINS, ("name",)
    fields = {
        "view": (entry.view or "").lower(),  # a feature found through its view's name ranks below its own
        "description": entry.description.lower(),
        "tags": " ".join(entry.tags).lower(),
        "owner": entry.owner.lower(),
        "entities": " ".join(entry.entities).lower(),
    }
    matched = tuple(field for field, text in fields.items() if query in text)
    if matched:
        return TEXT_CONTAINS, matched
    if len(words) > 1:
        fields = {"name": short, **fields}
        if all(any(w in text for text in fields.values()) for w in words):
            return TEXT_CONTAINS, tuple(f for f, text in fields.items() if any(w in text for w in words))
    return 0, ()


def search_catalog(
    entries: Iterable[CatalogEntry],
    query: str = "",
    *,
    tag: str | None = None,
    owner: str | None = None,
    kind: str | None = None,
    reads: Mapping[str, int] | None = None,
) -> list[SearchHit]:
    """The entries matching ``query`` (case-insensitive; empty matches everything), best first.

    ``tag`` keeps entries having that exact tag, ``owner`` those whose owner contains it and
    ``kind`` those of that kind (all case-insensitive). ``reads`` (entry name → recent reads)
    breaks ties between equally relevant entries in favour of the more read one."""
    if kind is not None and kind not in KINDS:
        raise InvalidRequestError(f"Unknown catalog kind '{kind}'.{did_you_mean(kind, KINDS)} Use one of {list(KINDS)}")
    entries = list(entries)
    q = " ".join(query.lower().split())
    words = q.split()
    popularity = reads or {}
    hits: list[SearchHit] = []
    for entry in entries:
        if kind is not None and entry.kind != kind:
            continue
        if tag is not None and tag.lower() not in (t.lower() for t in entry.tags):
            continue
        if owner is not None and owner.lower() not in entry.owner.lower():
            continue
        if not q:
            hits.append(SearchHit(entry, 0, ()))
            continue
        score, matched = _match(entry, q, words)
        if score:
            hits.append(SearchHit(entry, score, matched))

    def rank(hit: SearchHit) -> tuple[int, bool, int, int, int, str]:
        if not q:  # no query: the catalog in order, by kind then name
            return (0, False, 0, 0, KINDS.index(hit.entry.kind), hit.entry.name)
        name = hit.entry.short_name.lower()
        return (
            -hit.score,
            not name.startswith(q),
            -popularity.get(hit.entry.name, 0),
            len(name),
            KINDS.index(hit.entry.kind),
            hit.entry.name,
        )

    return _with_duplicates(sorted(hits, key=rank), entries, filtered=tag is not None or owner is not None)


def _with_duplicates(hits: list[SearchHit], entries: Sequence[CatalogEntry], *, filtered: bool) -> list[SearchHit]:
    """``hits`` with each feature's duplicates right after it: moved up when they matched too,
    added (matched ``duplicate``, at its score) when they did not, unless a tag or owner filter
    leaves them out."""
    if not any(h.entry.duplicates for h in hits):
        return hits
    features = {e.name: e for e in entries if e.kind == "feature"}
    found = {h.entry.name: h for h in hits if h.entry.kind == "feature"}
    out: list[SearchHit] = []
    placed: set[tuple[str, str]] = set()
    for hit in hits:
        if (hit.entry.kind, hit.entry.name) in placed:
            continue
        out.append(hit)
        placed.add((hit.entry.kind, hit.entry.name))
        for name in hit.entry.duplicates:
            if ("feature", name) in placed or name not in features:
                continue
            if name in found:
                out.append(found[name])
            elif filtered:
                continue
            else:
                out.append(SearchHit(features[name], hit.score, ("duplicate",)))
            placed.add(("feature", name))
    return out

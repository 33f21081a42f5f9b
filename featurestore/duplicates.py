"""Duplicate features: a new feature that computes what an existing one does (issue 18, part 4).

Two checks, both run by ``featurestore apply`` on the features of the views that are new or
changed (a view not in the registry, or whose version fingerprint differs from the registered
one); nothing runs when every view is unchanged.

**Exact** (static, here): two features are exact duplicates when their views read the same data
(the source's *identity*: a file source's normalized path, format and partition filter; a SQL
source's normalized query over its inputs' identities; never the source's name), describe the
same entities, and compute the same normalized expression. For a SQL transformation the
expression of a feature is the whole query reduced to the view's keys, its timestamp and that
one output column, parsed by sqlglot (DuckDB dialect) and normalized: references to other
output columns (an alias used in the SELECT list, WHERE, GROUP BY, HAVING, QUALIFY, ORDER BY; a
position; ``GROUP BY ALL``) replaced by their expressions first, output aliases removed, table
aliases renamed by position (column qualifiers follow them, and are dropped where a SELECT reads
one table), unquoted identifiers lower-cased, the source's own table name replaced by a
placeholder, CTEs renamed by position, the operands of commutative operators (``+``, ``*``,
``=``, ``<>``, ``AND``, ``OR``) ordered, named windows renamed by their first use (unused ones
dropped). A feature has no signature (is never an exact duplicate) when its query cannot be told
reduced: ``SELECT DISTINCT``, an alias whose expression reads a column of its own name, a column
still naming a dropped output. The column aliases a query defines inside (a CTE's) are compared
as written. A view without transformation compares
the source column a feature takes. A pandas transformation cannot be looked into: two features
of pandas views are exact duplicates only when their sources are the same, their functions'
source texts are equal (whitespace and the function's name aside), the values they read from
outside are equal (closure variables and the globals they name, by repr: constants and modules
only) and the features have the same name; a lambda, a function without source text, or one
reading any other outside value (another function, an object) has no signature.

**Equal / correlated** (by value): computed in ``etl/duplicates.py`` on the preview's sample
(this module only defines the seam, :class:`ValueComparer`, since the core does not import the
engines).

Findings are recorded in the registry (:mod:`featurestore.registry.duplicates`) for the catalog.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from featurestore.definitions import FeatureView, FileSource, Project, Source, StoredTransformation

if TYPE_CHECKING:
    from sqlglot import exp

    from featurestore.registry import Registry

DuplicateKind = Literal["exact", "equal", "correlated"]
DUPLICATE_KINDS: tuple[DuplicateKind, ...] = ("exact", "equal", "correlated")
DuplicateMode = Literal["off", "warn", "error"]

DEFAULT_CORRELATION = 0.99
"""|Pearson correlation| from which two features are reported as correlated."""
DEFAULT_EQUAL_SHARE = 0.99
"""Share of the joined rows with equal values from which two features are reported as equal."""
DEFAULT_MIN_ROWS = 20
"""Joined rows (same entity, same event time, both values present) needed to judge by value;
for equality, rows where either value differs from that feature's most common value."""
DEFAULT_MIN_ENTITIES = 10
"""Distinct entities among the joined rows needed to judge by value."""
DEFAULT_MIN_COVERAGE = 0.8
"""Share of the rows where either feature has a value on which both have one (same entity and
event time), needed to judge by value: a copy filtered to some entities or times is another
feature."""


@dataclass(frozen=True, kw_only=True)
class DuplicateFinding:
    """``feature`` (``view:feature``, the new one) computes what ``duplicate_of`` (owned by
    ``owner``) does: ``kind`` ``exact`` (same source and normalized expression), ``equal``
    (``figure``: the share of ``rows`` joined rows with equal values, counting the rows where
    either value differs from its feature's most common one) or ``correlated`` (``figure``: the
    Pearson correlation over ``rows`` joined rows)."""

    feature: str
    duplicate_of: str
    owner: str
    kind: DuplicateKind
    figure: float | None = None
    rows: int | None = None
    coverage: float | None = None
    """By value: the share of the rows where either feature has a value on which both have one
    (not recorded in the registry)."""

    @property
    def view(self) -> str:
        return self.feature.partition(":")[0]

    def describe(self) -> str:
        """The kind with its figure: ``exact``, ``equal on 100.0% of 812 rows``, ``correlated (r=0.998, 812 rows)``."""
        covered = "" if self.coverage is None else f", coverage {self.coverage:.0%}"
        if self.kind == "equal" and self.figure is not None:
            return f"equal on {self.figure:.1%} of {self.rows or 0:,} rows{covered}"
        if self.kind == "correlated" and self.figure is not None:
            return f"correlated (r={self.figure:.3f}, {self.rows or 0:,} rows{covered})"
        return "exact: same source and expression"

    def render(self) -> str:
        owner = f" (owner {self.owner})" if self.owner else ""
        return f"{self.feature} duplicates {self.duplicate_of}{owner}: {self.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "duplicate_of": self.duplicate_of,
            "owner": self.owner,
            "kind": self.kind,
            "figure": self.figure,
            "rows": self.rows,
            "coverage": self.coverage,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DuplicateFinding:
        return cls(
            feature=str(data["feature"]),
            duplicate_of=str(data["duplicate_of"]),
            owner=str(data.get("owner") or ""),
            kind=data["kind"],
            figure=None if data.get("figure") is None else float(data["figure"]),
            rows=None if data.get("rows") is None else int(data["rows"]),
            coverage=None if data.get("coverage") is None else float(data["coverage"]),
        )


class ValueComparer(Protocol):
    """Compares the values of ``views`` (new or changed, as defined) with those of the
    ``registered`` views' published rows for the same entities and event times; returns the
    pairs found equal or correlated (``etl.duplicates.SampleComparer``)."""

    def __call__(self, views: Sequence[FeatureView], registered: Sequence[FeatureView]) -> list[DuplicateFinding]: ...


def feature_owner(view: FeatureView, feature: str) -> str:
    """The feature's owner, or its view's when it names none."""
    owner = next((f.owner for f in view.features if f.name == feature), "")
    return owner or view.owner


def entity_names(view: FeatureView) -> tuple[str, ...]:
    """The names of the entities a view describes, sorted (entities may still be names)."""
    return tuple(sorted(e if isinstance(e, str) else e.name for e in view.entities))


def changed_views(views: Sequence[FeatureView], registered: Sequence[FeatureView]) -> list[FeatureView]:
    """The views that are new, or whose fingerprint differs from the registered view's."""
    known = {v.name: v.schema_fingerprint() for v in registered}
    return [v for v in views if known.get(v.name) != v.schema_fingerprint()]


# ------------------------------------------------------------------------------ exact duplicates


def source_identity(source: Source, root: Path | None = None) -> dict[str, Any]:
    """What a source reads, without its name: for a file its path (resolved against ``root``
    and normalized), format and partition filter; for SQL its normalized query, in which its
    inputs' names are replaced by their position, and its inputs' identities."""
    if isinstance(source, FileSource):
        path = source.path
        if root is not None and not os.path.isabs(path):
            path = str(root / path)
        return {
            "kind": "file",
            "path": os.path.normpath(path),
            "format": source.file_format,
            "partitions": " ".join((source.partitions or "").split()) or None,
        }
    names = {s.name.lower(): f"__input{i}__" for i, s in enumerate(source.sources)}
    return {
        "kind": "sql",
        "query": _normalized_query(source.query, names),
        "inputs": [source_identity(s, root) for s in source.sources],
    }


def _normalized_query(sql: str, tables: Mapping[str, str]) -> str:
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return " ".join(sql.lower().split())
    return _normalize(tree, tables).sql(dialect="duckdb")


def _normalize(tree: exp.Expr, tables: Mapping[str, str]) -> exp.Expr:
    """``tree`` normalized in place (see the module's docstring): ``tables`` (lower-case name →
    placeholder) are renamed, CTEs renamed by position, table aliases renamed by position (a
    column's qualifier follows its table's; it is dropped only where its SELECT reads one table),
    identifiers lower-cased, commutative operands ordered."""
    from sqlglot import exp
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

    tree = normalize_identifiers(tree, dialect="duckdb")
    _rename_table_aliases(tree)
    renames = dict(tables)
    for i, cte in enumerate(tree.find_all(exp.CTE)):
        renames[cte.alias_or_name.lower()] = f"__cte{i}__"
        cte.set("alias", exp.TableAlias(this=exp.to_identifier(f"__cte{i}__")))
    for table in tree.find_all(exp.Table):
        if not table.args.get("db") and table.name.lower() in renames:
            table.set("this", exp.to_identifier(renames[table.name.lower()]))
    for select in list(tree.find_all(exp.Select)):
        _rename_windows(select)
    commutative = (exp.Add, exp.Mul, exp.And, exp.Or, exp.EQ, exp.NEQ)
    for node in reversed(list(tree.walk(bfs=False))):  # children before their parents
        if isinstance(node, commutative):
            left, right = node.this, node.expression
            if left is not None and right is not None and left.sql() > right.sql():
                node.set("this", right)
                node.set("expression", left)
    return tree


def _sources(select: exp.Select) -> list[exp.Expr]:
    """What a SELECT reads: its FROM's and its joins' tables, subqueries, table functions."""
    from_ = select.args.get("from_") or select.args.get("from")
    found = [from_.this] if from_ is not None else []
    found += [join.this for join in select.args.get("joins") or ()]
    return [s for s in found if s is not None]


def _rename_table_aliases(tree: exp.Expr) -> None:
    """Each table (or subquery, table function) a SELECT reads gets the alias ``__tN__`` by its
    position in the query, keeping an alias's column list; a column's qualifier is renamed to the
    alias of the table it names (in its own SELECT or an enclosing one, for a correlated
    subquery), and dropped when its own SELECT reads that one table alone. Dropping every alias
    and qualifier would make ``a.amount`` and ``b.amount`` of a self-join the same."""
    from sqlglot import exp

    scopes: dict[int, tuple[dict[str, str], int]] = {}  # id(select) -> (name -> alias, number of sources)
    counter = 0
    for select in list(tree.find_all(exp.Select, bfs=False)):
        names: dict[str, str] = {}
        sources = _sources(select)
        for source in sources:
            alias = source.args.get("alias")
            name = source.alias_or_name.lower() if isinstance(source, exp.Expr) else ""
            new = f"__t{counter}__"
            counter += 1
            if name:
                names.setdefault(name, new)
            columns = alias.args.get("columns") if isinstance(alias, exp.TableAlias) else None
            source.set("alias", exp.TableAlias(this=exp.to_identifier(new), columns=columns))
        scopes[id(select)] = (names, len(sources))
    for column in list(tree.find_all(exp.Column)):
        qualifier = column.args.get("table")
        if not isinstance(qualifier, exp.Identifier) or column.args.get("db"):
            continue
        own = column.find_ancestor(exp.Select)
        scope: exp.Select | None = own
        while scope is not None:
            names, count = scopes.get(id(scope), ({}, 0))
            if qualifier.name.lower() in names:
                if scope is own and count == 1:
                    column.set("table", None)
                else:
                    column.set("table", exp.to_identifier(names[qualifier.name.lower()]))
                break
            scope = scope.find_ancestor(exp.Select)


def _rename_windows(select: exp.Select) -> None:
    """Named windows (``WINDOW w30 AS (...)``) renamed by their first use, the unused dropped."""
    from sqlglot import exp

    definitions = list(select.args.get("windows") or ())
    named = {d.this.name.lower(): d for d in definitions if isinstance(d.this, exp.Identifier)}
    if not named:
        return
    defining = {id(d) for d in definitions}
    renames: dict[str, str] = {}
    references: list[exp.Identifier] = []
    for window in select.find_all(exp.Window):
        if id(window) in defining:
            continue
        for part in (window.args.get("alias"), window.this):
            if isinstance(part, exp.Identifier) and part.name.lower() in named:
                renames.setdefault(part.name.lower(), f"__w{len(renames)}__")
                references.append(part)
    for ref in references:
        ref.set("this", renames[ref.name.lower()])
    kept = []
    for name, new_name in sorted(renames.items(), key=lambda item: item[1]):
        definition = named[name]
        definition.set("this", exp.to_identifier(new_name))
        kept.append(definition)
    select.set("windows", kept or None)


def _select_of(tree: exp.Expr) -> exp.Select | None:
    from sqlglot import exp

    return tree if isinstance(tree, exp.Select) else None


def feature_signatures(view: FeatureView, root: Path | None = None) -> dict[str, str]:
    """Each feature's signature: equal signatures mean exact duplicates. Features whose
    expression cannot be told (SQL that does not parse, or ``SELECT *`` with no column of that
    name) have none."""
    base = {"source": source_identity(view.source, root), "entities": entity_names(view)}
    t = view.transformation
    kind, text = ("sql", t) if isinstance(t, str) else ("none", "")
    if isinstance(t, StoredTransformation):
        kind, text = t.kind, t.text
    elif callable(t):
        kind, text = "pandas", FeatureView.to_spec(view)["transformation"]["text"]
    out: dict[str, str] = {}
    if kind == "none":
        for f in view.features:
            out[f.name] = _signature({**base, "column": f.name.lower(), "time": view.timestamp_field.lower()})
    elif kind == "pandas":
        outside = _outside_values(t) if callable(t) else None
        if outside is None:  # a lambda, no source text, or outside values it cannot tell
            return {}
        body = re.sub(r"\bdef\s+\w+\s*\(", "def _(", textwrap.dedent(text), count=1)
        for f in view.features:
            out[f.name] = _signature({**base, "pandas": " ".join(body.split()), "outside": outside, "column": f.name})
    else:
        out.update(_sql_signatures(view, text, base))
    return out


def _outside_values(function: Callable[..., Any]) -> dict[str, str] | None:
    """The values a pandas function reads from outside (its closure's variables and the globals
    it names, by repr), so that ``region_view("eu")`` and ``region_view("us")``, one function
    text, differ; ``None`` when the function cannot be told by its text: a lambda (its source
    text is the whole statement around it), no source text, or an outside value that is not a
    plain constant or a module."""
    import inspect
    import types

    if getattr(function, "__name__", "<lambda>") == "<lambda>":
        return None
    try:
        inspect.getsource(function)
        found = inspect.getclosurevars(function)
    except (OSError, TypeError):
        return None
    out: dict[str, str] = {}
    for scope, values in (("nonlocal", found.nonlocals), ("global", found.globals)):
        for name, value in values.items():
            if isinstance(value, types.ModuleType):
                out[f"{scope}:{name}"] = f"module {value.__name__}"
            elif _plain(value):
                out[f"{scope}:{name}"] = repr(value)
            else:
                return None
    return out


def _plain(value: object, depth: int = 0) -> bool:
    """Whether ``value``'s repr says what it is: constants, and containers of them."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return True
    if depth < 3 and isinstance(value, (tuple, list, set, frozenset)):
        return all(_plain(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _sql_signatures(view: FeatureView, sql: str, base: Mapping[str, Any]) -> dict[str, str]:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(textwrap.dedent(sql), read="duckdb")
    except sqlglot.errors.SqlglotError:  # apply reports the query's own error
        return {}
    select = _select_of(tree)
    if select is None or select.args.get("distinct") is not None:
        return {}  # DISTINCT over fewer columns is another query
    if not _resolve_output_references(select):
        return {}
    by_name = {p.alias_or_name.lower(): i for i, p in enumerate(select.expressions)}
    keys = [by_name[k.lower()] for k in _view_keys(view) if k.lower() in by_name]
    time = [by_name[view.timestamp_field.lower()]] if view.timestamp_field.lower() in by_name else []
    aliases = {p.alias.lower(): i for i, p in enumerate(select.expressions) if isinstance(p, exp.Alias)}
    out: dict[str, str] = {}
    for f in view.features:
        at = by_name.get(f.name.lower())
        if at is None:
            continue
        kept = (*keys, *time, at)
        copy = select.copy()
        projections = [copy.expressions[i].unalias() for i in kept]
        copy.set("expressions", projections)
        dropped = {name for name, i in aliases.items() if i not in kept}
        if any(c.name.lower() in dropped for c in _own_columns(copy) if not c.table):
            continue  # it still names a column this reduction dropped: cannot be told
        tables = {view.source.name.lower(): "__source__"}
        out[f.name] = _signature({**base, "sql": _normalize(copy, tables).sql(dialect="duckdb")})
    return out


def _own_columns(select: exp.Select) -> list[exp.Column]:
    """The columns of ``select`` itself, not those of the queries nested in it."""
    from sqlglot import exp

    return [c for c in select.find_all(exp.Column) if c.find_ancestor(exp.Select) is select]


def _resolve_output_references(select: exp.Select) -> bool:
    """Replace, in place, what refers to another output column of ``select`` by that column's
    expression, so that reducing the query to one column keeps its meaning: a column naming
    another output's alias (DuckDB's lateral aliases, in the SELECT list, WHERE, GROUP BY,
    HAVING, QUALIFY, ORDER BY), a position (``GROUP BY 2``) and ``GROUP BY ALL`` /
    ``ORDER BY ALL``. False when that cannot be told (an alias whose own expression reads a
    column of its name, which DuckDB may resolve either way; a chain too deep)."""
    from sqlglot import exp

    outputs = [p.unalias() for p in select.expressions]
    aliases = {p.alias.lower(): i for i, p in enumerate(select.expressions) if isinstance(p, exp.Alias)}
    for name, i in list(aliases.items()):
        target = outputs[i]
        if isinstance(target, exp.Column) and not target.table and target.name.lower() == name:
            del aliases[name]  # `x AS x`: the same either way
        elif any(c.name.lower() == name and not c.table for c in target.find_all(exp.Column)):
            return False  # `amount * 2 AS amount`: the source's column or the alias?
    group = select.args.get("group")
    if isinstance(group, exp.Group):
        if group.args.get("all"):
            plain = [o.copy() for o in outputs if not o.find(exp.AggFunc) and not o.find(exp.Window)]
            select.set("group", exp.Group(expressions=plain))
        else:
            _replace_positions(group.expressions, outputs)
    order = select.args.get("order")
    if isinstance(order, exp.Order):
        _replace_positions([o.this if isinstance(o, exp.Ordered) else o for o in order.expressions], outputs)
        if any(isinstance(o.this, exp.Column) and o.this.name.lower() == "all" for o in order.expressions):
            return False
    for _ in range(len(aliases) + 1):
        replaced = False
        for column in _own_columns(select):
            name = column.name.lower()
            if column.table or name not in aliases:
                continue
            projection = column.find_ancestor(exp.Alias)
            if projection is not None and projection.parent is select and projection.alias.lower() == name:
                continue  # an alias's own column: `x AS x` was left out above
            column.replace(outputs[aliases[name]].copy())
            replaced = True
        if not replaced:
            return True
        outputs = [p.unalias() for p in select.expressions]
    return False


def _replace_positions(nodes: Sequence[exp.Expr], outputs: Sequence[exp.Expr]) -> None:
    from sqlglot import exp

    for node in nodes:
        if isinstance(node, exp.Literal) and not node.is_string and node.name.isdigit():
            at = int(node.name) - 1
            if 0 <= at < len(outputs):
                node.replace(outputs[at].copy())


def _view_keys(view: FeatureView) -> tuple[str, ...]:
    keys = view.join_keys
    return keys if keys else tuple(e for e in view.entities if isinstance(e, str))


def _signature(parts: Mapping[str, Any]) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def exact_duplicates(
    checked: Sequence[FeatureView],
    others: Sequence[FeatureView],
    root: Path | None = None,
    registered_at: Mapping[str, datetime] | None = None,
) -> list[DuplicateFinding]:
    """The pairs of features with one signature of which one at least is of ``checked`` (new or
    changed views), the other of ``others`` (the project's other views) or of ``checked``. The
    original is the feature whose view was registered first (``registered_at``, view name →
    time; a view not registered comes after every registered one, an unchecked before a checked
    one), then by name: a changed view registered before its copy stays the original."""
    signatures: dict[str, list[tuple[str, FeatureView, str]]] = {}
    checked_names = {v.name for v in checked}
    for view in [*others, *checked]:
        for feature, signature in feature_signatures(view, root).items():
            signatures.setdefault(signature, []).append((f"{view.name}:{feature}", view, feature))
    order = _registration_order(registered_at)
    findings: list[DuplicateFinding] = []
    for group in signatures.values():
        if len(group) < 2:
            continue
        # Registered views by registration time, then the unchecked, then the checked ones.
        group.sort(key=lambda item: (*order(item[1].name), item[1].name in checked_names, item[0]))
        ref, view, feature = group[0]
        for name, other, _ in group[1:]:
            if other.name in checked_names or view.name in checked_names:
                findings.append(
                    DuplicateFinding(
                        feature=name, duplicate_of=ref, owner=feature_owner(view, feature), kind="exact", figure=None
                    )
                )
    return sorted(findings, key=lambda f: (f.feature, f.duplicate_of))


def _registration_order(registered_at: Mapping[str, datetime] | None) -> Callable[[str], tuple[int, float, str]]:
    """A sort key of view names: registered views by registration time, then the others."""
    times = registered_at or {}

    def key(name: str) -> tuple[int, float, str]:
        at = times.get(name)
        return (0, at.timestamp(), "") if at is not None else (1, 0.0, "")

    return key


# ------------------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class DuplicateCheck:
    """What a check of a project's definitions found: the views it checked (new or changed),
    the project's views, the registered views it no longer has (whose findings go) and the
    findings."""

    checked: tuple[str, ...]
    views: tuple[str, ...]
    findings: tuple[DuplicateFinding, ...]
    removed: tuple[str, ...] = ()

    @property
    def changes_records(self) -> bool:
        """Whether recording this check changes what the registry holds."""
        return bool(self.checked or self.removed)


def find_duplicates(
    registry: Registry,
    project: str,
    objects: Sequence[object],
    *,
    root: Path | None = None,
    values: ValueComparer | None = None,
    views: Iterable[str] | None = None,
    registered: Sequence[FeatureView] | None = None,
) -> DuplicateCheck:
    """Check the features of the new or changed views among ``objects`` (or of the views named
    by ``views``, new or not) against every other feature: exact duplicates always, equal or
    correlated ones when ``values`` compares them. ``registered`` are the project's views as
    applied (default: read from the registry now)."""
    defined = Project.collect(objects).feature_views
    if registered is None:
        registered = registry.list_feature_views(project)

    def chosen(defined: Sequence[FeatureView]) -> list[FeatureView]:
        if views is None:
            return changed_views(defined, registered)
        return [v for v in defined if v.name in set(views)]

    names = tuple(v.name for v in defined)
    removed = tuple(sorted({v.name for v in registered} - set(names)))
    if not chosen(defined):  # nothing new: no validation, no parse, no sample
        return DuplicateCheck((), names, (), removed)
    from featurestore.errors import DefinitionError
    from featurestore.validation import validate_project

    try:  # entities named by a string resolve here (keys, fingerprints)
        defined = validate_project(objects).feature_views
    except DefinitionError:  # apply names every problem, its outputs' included: nothing to check
        return DuplicateCheck((), names, (), removed)
    checked = chosen(defined)
    if not checked:
        return DuplicateCheck((), names, (), removed)
    checked_names = {v.name for v in checked}
    others = [v for v in defined if v.name not in checked_names]
    registered_at = registry.view_registration_times(project)
    findings = exact_duplicates(checked, others, root, registered_at)
    if values is not None:
        order = _registration_order(registered_at)
        by_name = {v.name: v for v in defined}
        exact = {frozenset((f.feature, f.duplicate_of)) for f in findings}
        comparable = [v for v in registered if v.name not in checked_names and v.name in names]
        for found in values(checked, comparable):
            if frozenset((found.feature, found.duplicate_of)) in exact:
                continue
            if order(found.view) < order(found.duplicate_of.partition(":")[0]):  # the checked one is older
                view, feature = found.view, found.feature.partition(":")[2]
                owner = feature_owner(by_name[view], feature) if view in by_name else ""
                found = dataclasses.replace(found, feature=found.duplicate_of, duplicate_of=found.feature, owner=owner)
            findings.append(found)
    findings.sort(key=lambda f: (f.feature, f.duplicate_of))
    return DuplicateCheck(tuple(sorted(checked_names)), names, tuple(findings), removed)

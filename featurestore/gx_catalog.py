"""Great Expectations' expectations, read from its installed source files without importing it.

``import great_expectations`` takes 5-10 s (it loads pandas, scipy and, when installed, pyspark),
too long for ``featurestore apply``, which only needs to know whether a :class:`GxExpectation`
names an expectation Great Expectations has and whether its arguments fit. This module answers
from the installed package's files, parsed with :mod:`ast`:

* the expectations are the classes ``great_expectations/expectations/core/__init__.py``
  imports (Great Expectations registers exactly these when it loads), each known by its class
  name and by its snake-case name, which is its module's name;
* an expectation's arguments are the fields of its pydantic (v1) model: the annotated class
  attributes of the class and of its bases, less ``ClassVar`` s and private names; an argument
  is required when it has no default and its type does not admit ``None``;
* an argument's value is checked the way pydantic v1 would for the types whose rules are simple
  and known here (``float``, ``int``, ``bool``, ``str``, ``StrictStr``, ``dict``, ``list``,
  ``Literal``, ``None`` and unions of them; ``ge``/``le``/``gt``/``lt``/``min_length``/
  ``max_length`` bounds), with pydantic's messages. A value of any other type (a date, a
  Great Expectations model), an argument with its own validator, and the checks of the
  arguments together (a root validator: ``min_value`` and ``max_value`` both missing, say) are
  left to Great Expectations itself, which builds the expectation when a run validates.

``tests/quality/test_gx_catalog_against_gx.py`` checks these answers against Great Expectations
itself for every expectation it registers. Nothing here imports Great Expectations. A release of
another major version than 1 is not read: :func:`featurestore.validation.gx_expectation_problems`
then asks Great Expectations itself.

What :func:`installed_catalog` reads is kept in a JSON file in the user's cache folder
(``$XDG_CACHE_HOME/featurestore``, else ``~/.cache/featurestore``), one per Great Expectations
version and folder, valid while the files it was read from and this module keep their
modification times and sizes: finding an expectation in its sources costs ~50 ms of CPU on
every ``featurestore apply`` of a project that declares one, in the cache ~5 ms. A cache that
cannot be read or written is ignored (the sources are parsed, as without one), and so is one
this user does not own or that others can write (file or folder; a shared home directory),
and there is none without a home directory or an absolute ``XDG_CACHE_HOME``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE = "great_expectations"
CORE = f"{PACKAGE}.expectations.core"

_TYPING = frozenset({"typing", "typing_extensions", f"{PACKAGE}.compatibility.typing_extensions"})


# ---------------------------------------------------------------------- types


@dataclass(frozen=True)
class _Type:
    """A field type as pydantic v1 validates it. ``kind`` is one of ``any``, ``none``, ``float``,
    ``int``, ``bool``, ``str``, ``dict``, ``list``, ``literal``, ``union``, ``date``,
    ``datetime`` and ``unknown`` (a type whose rules are not modelled: no verdict)."""

    kind: str
    args: tuple[_Type, ...] = ()
    strict: bool = False
    literals: tuple[Any, ...] = ()
    bounds: tuple[tuple[str, Any], ...] = ()


UNKNOWN = _Type("unknown")
ANY = _Type("any")
NONE = _Type("none")
_SCALARS = {
    "float": _Type("float"),
    "int": _Type("int"),
    "bool": _Type("bool"),
    "str": _Type("str"),
    "dict": _Type("dict"),
    "list": _Type("list"),
    "date": _Type("date"),
    "datetime": _Type("datetime"),
}
_NUMBER_BOUNDS = ("gt", "ge", "lt", "le")
_STR_BOUNDS = ("min_length", "max_length")
# Keyword arguments of pydantic's Field that do not change how a value validates.
_FIELD_INFO_ONLY = frozenset({"description", "title", "example", "examples", "schema_overrides", "default"})


def _with_bounds(t: _Type, bounds: dict[str, Any]) -> _Type:
    """``t`` constrained by a ``Field``'s bounds, as pydantic v1 applies them (to each member of
    a union that they suit); UNKNOWN when a bound does not suit any member."""
    if not bounds:
        return t
    if t.kind == "union":
        members = tuple(_with_bounds_member(m, bounds) for m in t.args)
        return _Type("union", members)
    out = _with_bounds_member(t, bounds)
    return UNKNOWN if out is t else out


def _with_bounds_member(t: _Type, bounds: dict[str, Any]) -> _Type:
    suits = _NUMBER_BOUNDS if t.kind in ("float", "int") else _STR_BOUNDS if t.kind == "str" else ()
    mine = {k: v for k, v in bounds.items() if k in suits}
    if not mine:
        return t
    return _Type(t.kind, t.args, t.strict, t.literals, (*t.bounds, *sorted(mine.items())))


# ---------------------------------------------------------------------- verdicts

_OK: list[tuple[str, str]] = []
# A verdict: [] (valid), a list of (location suffix, message) (invalid), or None (not known here).
Verdict = list[tuple[str, str]] | None

_BOOL_TRUE = {1, "1", "on", "t", "true", "y", "yes"}
_BOOL_FALSE = {0, "0", "off", "f", "false", "n", "no"}
_DATE_START = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_BOUND_TEXT = {
    "gt": "ensure this value is greater than {}",
    "ge": "ensure this value is greater than or equal to {}",
    "lt": "ensure this value is less than {}",
    "le": "ensure this value is less than or equal to {}",
}


def _number_bounds(value: float, t: _Type) -> Verdict:
    for name, limit in t.bounds:
        # Written as pydantic v1 does (`not v >= limit`), so that NaN fails every bound.
        if (
            (name == "gt" and not value > limit)
            or (name == "ge" and not value >= limit)
            or (name == "lt" and not value < limit)
            or (name == "le" and not value <= limit)
        ):
            return [("", _BOUND_TEXT[name].format(limit))]
    return _OK


def _check(t: _Type, value: Any) -> Verdict:
    """pydantic v1's verdict on ``value`` (a JSON value, not None) for type ``t``."""
    kind = t.kind
    if kind == "any":
        return _OK
    if kind == "none":
        return [("", "value is not none")]
    if kind == "float":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return [("", "value is not a valid float")]
        return _number_bounds(number, t)
    if kind == "int":
        if isinstance(value, str) and len(value) > 4300:
            return [("", "value is not a valid integer")]
        try:
            integer = value if isinstance(value, int) and not isinstance(value, bool) else int(value)
        except (TypeError, ValueError, OverflowError):
            return [("", "value is not a valid integer")]
        return _number_bounds(integer, t)
    if kind == "bool":
        if value is True or value is False:
            return _OK
        probe = value.lower() if isinstance(value, str) else value
        try:
            if probe in _BOOL_TRUE or probe in _BOOL_FALSE:
                return _OK
        except TypeError:
            pass
        return [("", "value could not be parsed to a boolean")]
    if kind == "str":
        if isinstance(value, str):
            text = value
        elif not t.strict and isinstance(value, int | float):
            text = str(value)
        else:
            return [("", "str type expected")]
        for name, limit in t.bounds:
            if name == "min_length" and len(text) < limit:
                return [("", f"ensure this value has at least {limit} characters")]
            if name == "max_length" and len(text) > limit:
                return [("", f"ensure this value has at most {limit} characters")]
        return _OK
    if kind == "dict":
        if isinstance(value, dict):
            return _OK
        try:
            dict(value)
        except (TypeError, ValueError):
            return [("", "value is not a valid dict")]
        return _OK
    if kind == "list":
        if not isinstance(value, list):
            return [("", "value is not a valid list")]
        if not t.args:
            return _OK
        errors: list[tuple[str, str]] = []
        for i, item in enumerate(value):
            verdict = _check_value(t.args[0], item, allow_none=False)
            if verdict is None:
                return None
            errors.extend((f".{i}{loc}", msg) for loc, msg in verdict)
        return errors
    if kind == "literal":
        try:
            if value in {v: v for v in t.literals}:  # pydantic v1 looks the value up in a dict
                return _OK
        except TypeError:
            pass
        return [("", "unexpected value; permitted: " + ", ".join(repr(v) for v in t.literals))]
    if kind in ("date", "datetime"):
        # Known only to fail: a text neither a number nor starting like a date, or a list/dict.
        if isinstance(value, list | dict):
            return [("", f"invalid type; expected {kind}, string, bytes, int or float")]
        if isinstance(value, str) and not _DATE_START.match(value):
            try:
                float(value)
            except ValueError:
                return [("", f"invalid {kind} format")]
        return None
    if kind == "union":
        errors = []
        unsure = False
        for member in t.args:
            if member.kind == "none":
                continue  # admitted by the field (pydantic's allow_none), not a member to try
            verdict = _check(member, value)
            if verdict is None:
                unsure = True
            elif not verdict:
                return _OK
            else:
                errors.extend(verdict)
        return None if unsure else errors
    return None


def _check_value(t: _Type, value: Any, allow_none: bool) -> Verdict:
    if value is None:
        return _OK if allow_none or t.kind == "any" else [("", "none is not an allowed value")]
    return _check(t, value)


def _admits_none(t: _Type) -> bool:
    return t.kind in ("none", "any") or (t.kind == "union" and any(_admits_none(m) for m in t.args))


# ---------------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class GxArgument:
    """One argument (pydantic field) of a Great Expectations expectation."""

    name: str
    required: bool
    type: _Type
    allow_none: bool
    validated: bool = False
    """Whether the expectation has its own validator for it (its verdict is then Great Expectations')."""

    def problems(self, value: Any) -> Verdict:
        """[] when pydantic v1 accepts ``value``; (location suffix, message) pairs when it
        refuses it; None when only Great Expectations can tell."""
        verdict = _check_value(self.type, value, self.allow_none)
        if self.validated and verdict == _OK:
            return None  # its validator may still refuse it
        return verdict


@dataclass(frozen=True)
class GxExpectationSchema:
    """A Great Expectations expectation: its snake-case name, class name and arguments."""

    name: str
    class_name: str
    arguments: Mapping[str, GxArgument] = field(default_factory=dict)

    def argument_problems(self, kwargs: Mapping[str, Any]) -> list[str]:
        """What pydantic would say of ``kwargs``, in the words of
        :func:`featurestore.validation._gx_argument_errors`: missing and unknown arguments and
        the values known to be refused; empty when none is (Great Expectations may still
        refuse the arguments together when a run builds the expectation)."""
        out: list[str] = []
        for arg in self.arguments.values():
            if arg.name not in kwargs:
                if arg.required:
                    out.append(f"missing argument '{arg.name}'")
                continue
            verdict = arg.problems(kwargs[arg.name])
            seen: set[str] = set()
            for loc, msg in verdict or ():
                if loc not in seen:  # pydantic lists every alternative of a union: the first says it
                    seen.add(loc)
                    out.append(f"argument '{arg.name}{loc}': {msg}")
        out.extend(
            f"unknown argument '{name}'; remove it or check the expectation's documented arguments"
            for name in kwargs
            if name not in self.arguments
        )
        return out


class GxCatalog:
    """The expectations of the Great Expectations installed at ``root`` (its package folder).
    With a ``cache`` file, what was read before is taken from it while still valid (see the
    module's docs) and what is read anew is added to it."""

    SUPPORTED_MAJOR = "1"
    """Great Expectations 1.x: expectations are pydantic v1 models under expectations/core."""

    def __init__(self, root: Path, version: str | None = None, cache: Path | None = None) -> None:
        self.root = root
        self.version = version
        self._modules: dict[str, _Module | None] = {}
        self._schemas: dict[str, GxExpectationSchema | None] = {}
        self._cache = cache
        self._files: dict[str, list[int]] = {}  # files read, relative to root -> [mtime_ns, size]
        self._cached: dict[str, str | None] = {}  # snake-case name -> schema as JSON text (None: none)
        self._dirty = False
        classes = self._load_cache()
        if classes is None:
            classes = {}  # snake-case name (its module's) -> class name
            core = self._module(CORE)
            if core is not None:
                for name, (module, attr) in core.imports.items():
                    if module.startswith(CORE + ".") and name == attr:
                        classes[module.rsplit(".", 1)[1]] = name
            self._dirty = cache is not None
        self._classes: dict[str, str] = classes
        self._by_class = {c: n for n, c in self._classes.items()}

    @property
    def supported(self) -> bool:
        """Whether the files are laid out as this module reads them: a 1.x release (or an
        unknown version) with expectations under ``expectations/core``. If not, the caller asks
        Great Expectations itself."""
        major = (self.version or self.SUPPORTED_MAJOR).split(".")[0]
        return major == self.SUPPORTED_MAJOR and bool(self._classes)

    def names(self) -> list[str]:
        """Every expectation's snake-case name, sorted (reads every expectation's file)."""
        found = sorted(n for n in self._classes if self._schema(n) is not None)
        self._save_cache()
        return found

    def find(self, name: str) -> GxExpectationSchema | None:
        """The expectation called ``name`` (snake-case or class name), or None."""
        snake = self._by_class.get(name, name)
        found = self._schema(snake) if snake in self._classes else None
        self._save_cache()
        return found

    def _schema(self, snake: str) -> GxExpectationSchema | None:
        if snake not in self._schemas:
            try:
                data = self._cached[snake]
                self._schemas[snake] = None if data is None else _schema_from_json(data)
            except (KeyError, TypeError, ValueError):  # not cached (or not readable): read it
                schema = self._schemas[snake] = self._read_schema(snake)
                if self._cache is not None:
                    try:
                        data = None if schema is None else _schema_to_json(schema)
                    except (TypeError, ValueError):  # a literal JSON cannot hold: not cached
                        return schema
                    # Kept only if it reads back the same (any value JSON would change is not).
                    if data is None or repr(_schema_from_json(data)) == repr(schema):
                        self._cached[snake] = data
                        self._dirty = True
        return self._schemas[snake]

    # -------------------------------------------------------------- the cache file

    def _load_cache(self) -> dict[str, str] | None:
        """The expectations' class names from the cache, its schemas put in ``_cached``; None
        when there is no valid cache."""
        if self._cache is None:
            return None
        try:
            data = json.loads(_read_own_file(self._cache))
            valid = (
                data["format"] == _CACHE_FORMAT
                and data["root"] == str(self.root)
                and data["version"] == self.version
                and data["reader"] == _reader_stamp()
                and all(_stamp(self.root / rel) == stamp for rel, stamp in data["files"].items())
            )
            if not valid:
                return None
            classes: dict[str, str] = data["classes"]
            self._files, self._cached = data["files"], data["schemas"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return classes

    def _save_cache(self) -> None:
        """Write what was read to the cache file (atomically: readers see the old or the new
        one); best effort, a cache that cannot be written is not an error."""
        if not self._dirty or self._cache is None:
            return
        self._dirty = False
        data = {
            "format": _CACHE_FORMAT,
            "root": str(self.root),
            "version": self.version,
            "reader": _reader_stamp(),
            "files": self._files,
            "classes": self._classes,
            "schemas": self._cached,
        }
        tmp: str | None = None
        try:
            self._cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._cache.parent, prefix=self._cache.name, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self._cache)
        except (OSError, TypeError, ValueError):  # not writable, or a value JSON cannot hold
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)

    def _read_text(self, path: Path) -> str:
        """A source file's text, its modification time and size noted for the cache."""
        text = path.read_text(encoding="utf-8")
        stamp = _stamp(path)
        if stamp is not None:
            self._files[str(path.relative_to(self.root))] = stamp
        return text

    def _read_schema(self, snake: str) -> GxExpectationSchema | None:
        class_name = self._classes[snake]
        module = self._module(f"{CORE}.{snake}")
        if module is None:
            return None
        info = self._fields(module, class_name, depth=0)
        if info.map_metric is False:
            return None  # abstract: Great Expectations does not register it
        fields, validated = info.fields, info.validated
        arguments = {
            name: GxArgument(
                name=name,
                required=f.required,
                type=f.type,
                allow_none=f.allow_none,
                validated=name in validated,
            )
            for name, f in fields.items()
        }
        return GxExpectationSchema(snake, class_name, arguments)

    # -------------------------------------------------------------- reading the sources

    def _path(self, dotted: str) -> Path | None:
        parts = dotted.split(".")
        if parts[0] != PACKAGE:
            return None
        base = self.root.joinpath(*parts[1:])
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        return path if path.is_file() else None

    def _module(self, dotted: str) -> _Module | None:
        if dotted not in self._modules:
            path = self._path(dotted)
            self._modules[dotted] = _Module(dotted, path, self._read_text(path)) if path else None
        return self._modules[dotted]

    def _defines_class(self, dotted: str, name: str) -> bool:
        """Whether module ``dotted`` defines ``name`` as a class and nothing else, read from its
        text: parsing a large module (render.components: ~15 ms) only to learn that is wasted."""
        if dotted in self._modules:
            found = self._modules[dotted]
            return found is not None and name in found.classes and name not in found.assigns
        path = self._path(dotted)
        if path is None:
            return False
        text = self._read_text(path)
        word = re.escape(name)
        return (
            re.search(rf"^class {word}\b", text, re.MULTILINE) is not None
            and re.search(rf"^{word}\s*[:=]", text, re.MULTILINE) is None
        )

    def _fields(self, module: _Module, class_name: str, depth: int) -> _ClassInfo:
        """The pydantic fields of class ``class_name`` of ``module`` (inherited ones first, as
        pydantic v1 collects them), the names of those with their own validators, its class
        variables and whether it sets ``map_metric`` (a map expectation without one is abstract:
        Great Expectations does not register it)."""
        node = module.classes.get(class_name)
        info = _ClassInfo()
        if node is None or depth > 20:
            return info
        for base in reversed(node.bases):
            found = self._resolve_class(module, base, depth)
            if found is not None:
                inherited = self._fields(found[0], found[1], depth + 1)
                info.fields.update(inherited.fields)
                info.validated |= inherited.validated
                info.class_vars |= inherited.class_vars
                if inherited.map_metric is not None:
                    info.map_metric = inherited.map_metric
        own = {
            stmt.target.id
            for stmt in node.body
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
        }
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                name = stmt.target.id
                if name == "map_metric" and stmt.value is not None:
                    info.map_metric = _is_set(stmt.value)
                if _is_classvar(stmt.annotation):
                    info.class_vars.add(name)
                    continue
                if name.startswith("_"):
                    continue
                info.fields[name] = self._field(module, stmt.annotation, stmt.value)
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if not isinstance(target, ast.Name):
                        continue
                    name = target.id
                    if name == "map_metric":
                        info.map_metric = _is_set(stmt.value)
                    if name in info.fields:
                        # A new default for an inherited field (pydantic keeps its type).
                        old = info.fields[name]
                        default_none = isinstance(stmt.value, ast.Constant) and stmt.value.value is None
                        info.fields[name] = _Field(False, old.type, old.allow_none or default_none)
                    elif not name.startswith("_") and name not in info.class_vars and name not in own:
                        # pydantic v1 makes a plain class attribute a field, typed by its value.
                        inferred = _inferred_type(stmt.value)
                        if inferred is not None:
                            info.fields[name] = _Field(False, inferred, False)
            info.validated |= _validated_fields(stmt)
        return info

    def _resolve_class(self, module: _Module, expr: ast.expr, depth: int) -> tuple[_Module, str] | None:
        if isinstance(expr, ast.Name):
            if expr.id in module.classes:
                return module, expr.id
            target = module.imports.get(expr.id)
            if target is not None:
                found = self._module(target[0])
                if found is not None and depth < 20:
                    return self._resolve_class(found, ast.Name(target[1]), depth + 1)
        return None

    def _field(self, module: _Module, annotation: ast.expr, value: ast.expr | None) -> _Field:
        t, annotated_default, annotated_bounds = self._annotation(module, annotation, depth=0)
        has_default, default_none, bounds = annotated_default, False, dict(annotated_bounds)
        if value is not None:
            if _is_field_call(module, value):
                call = value
                assert isinstance(call, ast.Call)
                default = call.args[0] if call.args else _keyword(call, "default")
                if default is not None and not (isinstance(default, ast.Constant) and default.value is Ellipsis):
                    has_default = True
                    default_none = isinstance(default, ast.Constant) and default.value is None
                if _keyword(call, "default_factory") is not None:
                    has_default = True
                extra = _field_bounds(call)
                if extra is None:
                    t = UNKNOWN
                else:
                    bounds.update(extra)
            else:
                has_default = True
                default_none = isinstance(value, ast.Constant) and value.value is None
        t = _with_bounds(t, bounds) if t is not UNKNOWN else t
        admits_none = _admits_none(t)
        # pydantic v1: Optional[...] without a default is optional, with a default of None.
        required = not has_default and not admits_none
        return _Field(required, t, admits_none or default_none)

    def _annotation(self, module: _Module, expr: ast.expr, depth: int) -> tuple[_Type, bool, dict[str, Any]]:
        """The type an annotation names, whether an ``Annotated[..., Field(default)]`` gives a
        default, and the bounds of such a ``Field``."""
        if depth > 20:
            return UNKNOWN, False, {}
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            try:
                expr = ast.parse(expr.value, mode="eval").body
            except SyntaxError:
                return UNKNOWN, False, {}
        if isinstance(expr, ast.Constant) and expr.value is None:
            return NONE, False, {}
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
            left = self._annotation(module, expr.left, depth + 1)[0]
            right = self._annotation(module, expr.right, depth + 1)[0]
            return _union([left, right]), False, {}
        if isinstance(expr, ast.Subscript):
            origin = self._name(module, expr.value, depth)
            items = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
            if origin in ("typing.Optional",):
                return _union([self._annotation(module, items[0], depth + 1)[0], NONE]), False, {}
            if origin == "typing.Union":
                return _union([self._annotation(module, i, depth + 1)[0] for i in items]), False, {}
            if origin in ("typing.List", "builtins.list"):
                item = self._annotation(module, items[0], depth + 1)[0]
                return (UNKNOWN if item is UNKNOWN else _Type("list", (item,))), False, {}
            if origin == "typing.Literal":
                values = tuple(i.value for i in items if isinstance(i, ast.Constant))
                return (_Type("literal", literals=values) if len(values) == len(items) else UNKNOWN), False, {}
            if origin in ("typing.Dict", "builtins.dict"):
                return UNKNOWN, False, {}  # keys and values would be validated too
            if origin == "typing.Annotated":
                inner, _, _ = self._annotation(module, items[0], depth + 1)
                has_default, bounds = False, {}
                for extra in items[1:]:
                    if _is_field_call(module, extra):
                        assert isinstance(extra, ast.Call)
                        default = extra.args[0] if extra.args else _keyword(extra, "default")
                        has_default = default is not None and not (
                            isinstance(default, ast.Constant) and default.value is Ellipsis
                        )
                        found = _field_bounds(extra)
                        if found is None:
                            return UNKNOWN, has_default, {}
                        bounds.update(found)
                    else:
                        return UNKNOWN, False, {}
                return inner, has_default, bounds
            return UNKNOWN, False, {}
        name = self._name(module, expr, depth)
        if name is None:
            return UNKNOWN, False, {}
        simple = {
            "builtins.float": "float",
            "builtins.int": "int",
            "builtins.bool": "bool",
            "builtins.str": "str",
            "builtins.dict": "dict",
            "builtins.list": "list",
            "typing.List": "list",
            "typing.Dict": "dict",
            "datetime.date": "date",
            "datetime.datetime": "datetime",
        }
        if name in simple:
            return _SCALARS[simple[name]], False, {}
        if name == "typing.Any":
            return ANY, False, {}
        if name == "pydantic.StrictStr":
            return _Type("str", strict=True), False, {}
        if name.startswith("alias:"):
            alias_module, alias = name[6:].rsplit(":", 1)
            defining = self._module(alias_module)
            if defining is not None and alias in defining.assigns:
                return self._annotation(defining, defining.assigns[alias], depth + 1)
        return UNKNOWN, False, {}

    def _name(self, module: _Module, expr: ast.expr, depth: int) -> str | None:
        """What a name in ``module`` stands for: ``typing.X``, ``builtins.X``, ``datetime.X``,
        ``pydantic.X``, ``alias:MODULE:NAME`` (a module-level assignment) or None."""
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            base = module.imports.get(expr.value.id)
            target = ".".join(p for p in base if p) if base else expr.value.id
            if target in _TYPING or target == "typing":
                return f"typing.{expr.attr}"
            if target.endswith("pydantic"):
                return f"pydantic.{expr.attr}"
            if target == "datetime":
                return f"datetime.{expr.attr}"
            return None
        if not isinstance(expr, ast.Name):
            return None
        name = expr.id
        if name in module.assigns:
            return f"alias:{module.name}:{name}"
        if name in module.imports:
            source, attr = module.imports[name]
            if source in _TYPING:
                return f"typing.{attr}"
            if source.endswith("pydantic") or source.startswith("pydantic"):
                return f"pydantic.{attr}"
            if source == "datetime":
                return f"datetime.{attr}"
            if self._defines_class(source, attr):
                return None  # a class of Great Expectations' own: not modelled, no need to parse its file
            found = self._module(source)
            if found is None or depth > 20:
                return None
            return self._name(found, ast.Name(attr), depth + 1)
        if name in module.classes:
            return None
        if name in ("float", "int", "bool", "str", "dict", "list"):
            return f"builtins.{name}"
        return None


@dataclass
class _ClassInfo:
    fields: dict[str, _Field] = field(default_factory=dict)
    validated: set[str] = field(default_factory=set)
    class_vars: set[str] = field(default_factory=set)
    map_metric: bool | None = None
    """Whether the class (or a base) sets ``map_metric`` to a value (False: to None)."""


def _is_set(value: ast.expr) -> bool:
    return not (isinstance(value, ast.Constant) and value.value is None)


def _inferred_type(value: ast.expr) -> _Type | None:
    """The type pydantic v1 infers for a plain class attribute, or None when it is no field
    (a function, a class, a validator...)."""
    if isinstance(value, ast.Dict):
        return _SCALARS["dict"]
    if isinstance(value, ast.List):
        return _SCALARS["list"]
    if isinstance(value, ast.Constant) and value.value is not None:
        name = type(value.value).__name__
        return _SCALARS.get(name, UNKNOWN)
    if isinstance(value, ast.Tuple | ast.Set):
        return UNKNOWN
    return None


@dataclass(frozen=True)
class _Field:
    required: bool
    type: _Type
    allow_none: bool


class _Module:
    """One parsed source file: its imports, module-level assignments and classes."""

    def __init__(self, name: str, path: Path, text: str) -> None:
        self.name = name
        package = path.name == "__init__.py"
        tree = ast.parse(text, filename=str(path))
        self.imports: dict[str, tuple[str, str]] = {}
        self.assigns: dict[str, ast.expr] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        here = name.split(".") if package else name.split(".")[:-1]
        for stmt in _top_level(tree.body):
            if isinstance(stmt, ast.ImportFrom):
                if stmt.level:
                    base = here[: len(here) - stmt.level + 1]
                    source = ".".join(base + ([stmt.module] if stmt.module else []))
                else:
                    source = stmt.module or ""
                for alias in stmt.names:
                    self.imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:
                        parent, _, last = alias.name.rpartition(".")
                        self.imports[alias.asname] = (parent, last) if parent else (alias.name, "")
                    else:
                        self.imports.setdefault(alias.name.split(".")[0], (alias.name.split(".")[0], ""))
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                self.assigns[stmt.targets[0].id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                self.assigns[stmt.target.id] = stmt.value
            elif isinstance(stmt, ast.ClassDef):
                self.classes[stmt.name] = stmt
        # `from x import y` where x is a module: `y.attr` in annotations (pydantic.Field).
        for local, (source, attr) in list(self.imports.items()):
            if attr == "" and source:
                self.imports[local] = (source.rpartition(".")[0], source.rpartition(".")[2])


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module statements, including those under ``if TYPE_CHECKING:`` and ``try:``."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            yield from _top_level(stmt.body)
            yield from _top_level(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _top_level(stmt.body)
        else:
            yield stmt


def _union(members: list[_Type]) -> _Type:
    flat: list[_Type] = []
    for m in members:
        flat.extend(m.args if m.kind == "union" else (m,))
    if any(m.kind == "any" for m in flat):
        return ANY
    # None is admitted by the field, not validated as a member (pydantic v1's allow_none).
    return _Type("union", tuple(flat))


def _is_classvar(annotation: ast.expr) -> bool:
    expr = annotation.value if isinstance(annotation, ast.Subscript) else annotation
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value.startswith(("ClassVar", "typing.ClassVar"))
    return (isinstance(expr, ast.Name) and expr.id == "ClassVar") or (
        isinstance(expr, ast.Attribute) and expr.attr == "ClassVar"
    )


def _is_field_call(module: _Module, expr: ast.expr) -> bool:
    if not isinstance(expr, ast.Call):
        return False
    func = expr.func
    if isinstance(func, ast.Attribute):
        return func.attr == "Field"
    return isinstance(func, ast.Name) and func.id == "Field"


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _field_bounds(call: ast.Call) -> dict[str, Any] | None:
    """The bounds a ``Field(...)`` sets, or None when it sets something not modelled here."""
    bounds: dict[str, Any] = {}
    for k in call.keywords:
        if k.arg in _FIELD_INFO_ONLY or k.arg == "default_factory":
            continue
        if k.arg in _NUMBER_BOUNDS + _STR_BOUNDS:
            try:
                value = ast.literal_eval(k.value)
            except ValueError:
                return None
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                return None
            bounds[k.arg] = value
            continue
        return None
    return bounds


def _validated_fields(stmt: ast.stmt) -> set[str]:
    """Fields named by ``validator("a", ...)`` calls in a class statement (a decorator, or an
    assignment ``_check = validator("a")(function)``)."""
    out: set[str] = set()
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        roots: list[ast.AST] = list(stmt.decorator_list)  # not the body: walking every method is slow
    elif isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
        roots = [stmt.value]
    else:
        return out
    for node in (n for root in roots for n in ast.walk(root)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name == "validator":
                out.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return out


@functools.cache
def installed_catalog() -> GxCatalog | None:
    """The catalog of the installed Great Expectations, or None when it is not installed.
    ``find_spec`` of a top-level package locates it without running it. Cached in the user's
    cache folder (see the module's docs)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    try:
        version: str | None = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = None
    root = Path(spec.origin).parent
    return GxCatalog(root, version, cache=cache_file(root, version))


# ---------------------------------------------------------------------- the cache's format

_CACHE_FORMAT = 2


def cache_file(root: Path, version: str | None) -> Path | None:
    """The cache file of the Great Expectations ``version`` installed at ``root``, or None when
    there is no cache folder: no home directory (a container running under an arbitrary user
    id has none) and no absolute ``XDG_CACHE_HOME`` (a relative one is ignored, as the XDG
    specification says)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    except (RuntimeError, KeyError, OSError):  # Path.home(): no HOME and no passwd entry
        return None
    folder = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return base / "featurestore" / f"gx_catalog-{version or 'unknown'}-{folder}.json"


def _read_own_file(path: Path) -> str:
    """The text of ``path`` if this user owns it and its folder, and neither can be written by
    anyone else (a shared home or cache folder: another account's file would change what
    ``apply`` accepts); OSError otherwise. Symbolic links are not followed."""
    folder = os.stat(path.parent)
    uid = os.geteuid()
    if folder.st_uid != uid or folder.st_mode & 0o022:
        raise PermissionError(f"{path.parent} is not this user's own folder")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != uid or st.st_mode & 0o022:
            raise PermissionError(f"{path} is not this user's own file")
        return f.read()


def _stamp(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


@functools.cache
def _reader_stamp() -> list[int] | None:
    """This module's own file's stamp: a cache written by another version of it is not read."""
    return _stamp(Path(__file__))


def _type_to_json(t: _Type) -> Any:
    """A type as JSON: its kind alone when the rest is the default (most are), else an object
    of its kind and the fields that are not."""
    if t == _Type(t.kind):
        return t.kind
    out: dict[str, Any] = {"kind": t.kind}
    if t.args:
        out["args"] = [_type_to_json(a) for a in t.args]
    if t.strict:
        out["strict"] = True
    if t.literals:
        out["literals"] = list(t.literals)
    if t.bounds:
        out["bounds"] = [list(b) for b in t.bounds]
    return out


def _type_from_json(data: Any) -> _Type:
    if isinstance(data, str):
        return _Type(data)
    return _Type(
        data["kind"],
        tuple(_type_from_json(a) for a in data.get("args", ())),
        data.get("strict", False),
        tuple(data.get("literals", ())),
        tuple((name, value) for name, value in data.get("bounds", ())),
    )


def _schema_to_json(schema: GxExpectationSchema) -> str:
    """A schema as JSON text, kept as a string in the cache file: reading the file then parses
    only the schemas asked for (all of them are ~90 kB)."""
    arguments = [
        [a.name, a.required, _type_to_json(a.type), a.allow_none, a.validated] for a in schema.arguments.values()
    ]
    return json.dumps([schema.name, schema.class_name, arguments], separators=(",", ":"))


def _schema_from_json(text: str) -> GxExpectationSchema:
    name, class_name, listed = json.loads(text)
    arguments = {
        arg: GxArgument(name=arg, required=required, type=_type_from_json(t), allow_none=allow_none, validated=v)
        for arg, required, t, allow_none, v in listed
    }
    return GxExpectationSchema(name, class_name, arguments)

"""The error hierarchy. Every error a user can act on derives from :class:`FeatureStoreError`.

Subclasses are split by what the user must do about them: fix a definition, fix a config
file, use an existing name, start or reach a store, look at a quality report, or fix the
request they sent. HTTP status codes are mapped only in ``datamart``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from featurestore.secrets import redact


def near_names(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The candidates that look most like ``name``, best first (for "did you mean" hints)."""
    return difflib.get_close_matches(name, list(candidates), n=limit, cutoff=0.6)


def did_you_mean(name: str, candidates: Iterable[str], kinds: Mapping[str, str] | None = None) -> str:
    """A " Did you mean 'x'?" suffix, or an empty string when nothing is close. With ``kinds``
    (candidate → its kind), each suggestion says what it is: " Did you mean feature service 'x'?"."""
    close = near_names(name, candidates)
    if not close:
        return ""
    shown = [f"{kinds[c]} '{c}'" if kinds and c in kinds else f"'{c}'" for c in close]
    return " Did you mean " + " or ".join(shown) + "?"


class FeatureStoreError(Exception):
    """Root of every error raised on purpose by the feature store. Its message never shows a
    secret: passwords of URLs and known secret values are hidden (:mod:`featurestore.secrets`)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class DefinitionError(FeatureStoreError):
    """One or more definitions are invalid. ``problems`` lists every one found, not only the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems in the definitions:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(message)


class ConfigError(FeatureStoreError):
    """The project configuration is wrong: names the file and the key to fix."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        where = ""
        if file and key:
            where = f"{file}: key '{key}': "
        elif file:
            where = f"{file}: "
        elif key:
            where = f"key '{key}': "
        super().__init__(where + message)


class NotFoundError(FeatureStoreError):
    """A named object does not exist. Carries the kind, the name and the nearest existing names.

    When the name could be of several kinds (a feature view or a feature service), ``kinds`` maps
    each candidate to its kind, and the suggestions say which kind each is."""

    def __init__(
        self,
        kind: str,
        name: str,
        *,
        project: str | None = None,
        candidates: Iterable[str] = (),
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        names = [str(c) for c in candidates]
        self.suggestions = near_names(name, names)
        where = f" in project '{project}'" if project else ""
        super().__init__(f"{kind[:1].upper()}{kind[1:]} '{name}' not found{where}.{did_you_mean(name, names, kinds)}")


class StoreUnavailableError(FeatureStoreError):
    """A store could not be reached or used. Names the store and its address."""

    def __init__(self, store: str, address: str, reason: str) -> None:
        self.store = store
        self.address = address = redact(address)
        reason = redact(reason)
        super().__init__(f"{store} at {address} is unavailable: {reason}")


class QualityCheckFailedError(FeatureStoreError):
    """Computed data failed a blocking quality check; nothing was published."""

    def __init__(self, message: str, report: object = None) -> None:
        self.report = report
        super().__init__(message)


class InvalidRequestError(FeatureStoreError):
    """A read request is malformed (bad spine, unknown feature reference, bad date...).

    When the fix is to pass an argument, ``argument`` names it as the SDK spells it and the
    message says ``{argument}`` where it names it: ``str(err)`` shows the SDK's spelling
    (``timestamp_column=...``), and a front end that spells it otherwise (the CLI's
    ``--timestamp-column``) shows :meth:`render` with its own spellings, from the same error.
    """

    def __init__(self, message: str, *, argument: str | None = None, example: str = "...") -> None:
        self.template = message
        self.argument = argument
        self.example = example
        super().__init__(self.render())

    def render(self, spellings: Mapping[str, str] | None = None) -> str:
        """The message, naming the argument as ``spellings`` spell it (default: the SDK's ``name=...``)."""
        if self.argument is None:
            return self.template
        spelled = (spellings or {}).get(self.argument) or f"{self.argument}={self.example}"
        return self.template.replace("{argument}", spelled)


class PushRejectedError(InvalidRequestError):
    """A pushed batch failed validation; nothing of it was published. ``rows``: the failing rows'
    positions in the batch (0-based), the first twenty of them."""

    def __init__(self, message: str, *, rows: Sequence[int] = ()) -> None:
        self.rows = list(rows)[:20]
        super().__init__(message)


class RunError(FeatureStoreError):
    """A run failed while computing or publishing; the stores were left as they were before it."""


class UnreadableValueError(FeatureStoreError):
    """The online store holds a value this version cannot read (another format, a layout the store
    has no record of, or a value changed by hand), or an offline file holds a column that cannot be
    cast to its feature's declared type. Names the view (and the entity); re-running the view
    rewrites the value."""


class AuthenticationError(FeatureStoreError):
    """A request carries no credentials, or credentials that are unknown, expired, revoked or
    wrongly signed (HTTP 401). The message says which, never the credential itself."""


class PermissionDeniedError(FeatureStoreError):
    """An authenticated identity may not do what it asked: its role lacks the permission, or the
    object belongs to another project or feature service (HTTP 403). Names the identity, its role
    and what it would need."""

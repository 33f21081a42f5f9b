"""Feature store errors over HTTP: the one place that maps them to status codes and back.

The API answers every error with a JSON body ``{"error": <class name>, "message": <the error's
message>, ...}`` plus the error's own fields (``suggestions`` for a name not found, ``problems``
for invalid definitions, ``store``/``address`` for a store that is down), every secret hidden
(:func:`featurestore.secrets.redact`). The client turns such a body back into the same exception
class, keeping the message, so ``except NotFoundError`` works the same whether the feature store
is used in process or through the datamart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from featurestore import errors as core_errors
from featurestore.errors import (
    AuthenticationError,
    ConfigError,
    DefinitionError,
    FeatureStoreError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PushRejectedError,
    QualityCheckFailedError,
    StoreUnavailableError,
)
from featurestore.secrets import redact


class MalformedRequestError(InvalidRequestError):
    """The request cannot be read at all (a spine that is not CSV or Parquet, invalid JSON):
    answered with 400 rather than the 422 of a well-formed but invalid request."""


def http_status(err: FeatureStoreError) -> int:
    """The HTTP status code of a feature store error."""
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, AuthenticationError):
        return 401
    if isinstance(err, PermissionDeniedError):
        return 403
    if isinstance(err, MalformedRequestError):
        return 400
    if isinstance(err, InvalidRequestError | DefinitionError):
        return 422
    if isinstance(err, StoreUnavailableError):
        return 503
    return 500


def error_body(err: FeatureStoreError) -> dict[str, Any]:
    """The JSON body describing ``err``: its class, its message and the fields a caller can act on."""
    # A malformed request is an invalid request to the caller: the client raises InvalidRequestError.
    name = InvalidRequestError.__name__ if isinstance(err, MalformedRequestError) else type(err).__name__
    body: dict[str, Any] = {"error": name, "message": str(err)}
    if isinstance(err, NotFoundError):
        body.update(kind=err.kind, name=err.name, suggestions=err.suggestions)
    elif isinstance(err, DefinitionError):
        body["problems"] = err.problems
    elif isinstance(err, StoreUnavailableError):
        body.update(store=err.store, address=err.address)
    elif isinstance(err, ConfigError):
        body.update(file=err.file, key=err.key)
    rows = getattr(err, "rows", None)  # a refused push names its failing rows
    if isinstance(rows, list):
        body["rows"] = rows
    return {key: _redacted(value) for key, value in body.items()}


def _redacted(value: Any) -> Any:
    """The last line before a body leaves: every string in it without secrets (the errors hide
    them already; a driver's text quoted in a message may hold one they could not know of)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


_BY_STATUS: dict[int, type[FeatureStoreError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: InvalidRequestError,
    503: StoreUnavailableError,
}

_FIELDS: dict[type[FeatureStoreError], dict[str, Any]] = {
    NotFoundError: {"kind": "", "name": "", "suggestions": []},
    DefinitionError: {"problems": []},
    StoreUnavailableError: {"store": "", "address": ""},
    ConfigError: {"file": None, "key": None},
    QualityCheckFailedError: {"report": None},
    PushRejectedError: {"rows": []},
}


def error_from_body(status: int, body: Mapping[str, Any]) -> FeatureStoreError:
    """The exception an error response stands for, with the server's message and fields.

    The class is the one named by ``error`` when the core defines it, else the one the status
    code implies (404: NotFoundError, 400/422: InvalidRequestError, 503: StoreUnavailableError)."""
    message = str(body.get("message") or f"the datamart answered HTTP {status}")
    named = getattr(core_errors, str(body.get("error", "")), None)
    if isinstance(named, type) and issubclass(named, FeatureStoreError):
        cls: type[FeatureStoreError] = named
    else:
        cls = _BY_STATUS.get(status, FeatureStoreError)
    # The subclasses' constructors compose their own messages; build the instance around the
    # server's message instead and set the fields their constructors would have set.
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    for klass, fields in _FIELDS.items():
        if issubclass(cls, klass):
            for attr, default in fields.items():
                value = body.get(attr, default)
                setattr(err, attr, list(value) if isinstance(default, list) and value is not None else value)
    return err

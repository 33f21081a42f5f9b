"""What is secret, and text with every secret hidden: the one place that knows.

Secrets are

* the password of a URL, whatever its scheme (``redis://user:PASSWORD@host``,
  ``postgresql+psycopg://fs:PASSWORD@db/registry``...), and a ``password=``/``token=`` query
  parameter;
* the value of a setting named like a secret (``password``, ``token``, ``secret``, ``api_key``...:
  :func:`is_secret_name`);
* the values ``featurestore.yaml`` takes from environment variables (``${REDIS_PASSWORD}``).

Stores build their addresses with :func:`redact_url`, so an error names where a store is without
its password. Where text leaves the process (an error's message, an API body, a UI page, a run's
recorded error, a log line), :func:`redact` is the last line: besides the URL patterns it hides,
verbatim, every secret value this process has met (:func:`remember`, called when a project's
configuration is loaded), since a driver's exception may quote a URL or a setting in text we do
not control. Pure: no I/O, only this process's set of known values.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"
"""What a secret is replaced with."""

MIN_SECRET_LENGTH = 4
"""Known values shorter than this are not hidden verbatim in free text (hiding every "1" of a
message would garble it and say which characters the secret has); they are still hidden where
they are recognised by place: a URL's password, a secret setting."""

_SECRET_NAME = re.compile(
    r"(?:^|[_.\-])(?:password|passwd|pwd|passphrase|token|secret|key|credentials?)$", re.IGNORECASE
)
# scheme://user:PASSWORD@ (the password runs to the last '@' before the host: no '/' nor space).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<secret>[^\s/'\"]*)@")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|api_key|access_token)=)(?P<secret>[^&\s#'\"]+)",
    re.IGNORECASE,
)

_known: set[str] = set()
_known_sorted: tuple[str, ...] = ()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """Whether a setting called ``name`` holds a secret: ``password``, ``token``, ``secret``,
    ``key``, ``credentials``... alone or as the last word (``api_key``, ``db_password``, Spark's
    ``spark.hadoop.fs.s3a.secret.key``), not as the first (``key_prefix``, ``keyspace`` are no
    secrets)."""
    return bool(_SECRET_NAME.search(name))


def remember(*values: str | None) -> None:
    """Hide these values, verbatim, from every text :func:`redact` sees in this process (also
    their URL-encoded and decoded forms, as a driver may quote either)."""
    global _known_sorted
    new = set()
    for value in values:
        if not value:
            continue
        for form in (value, unquote(value), quote(value, safe="")):
            if len(form) >= MIN_SECRET_LENGTH and form not in _known:
                new.add(form)
    if new:
        with _lock:
            _known.update(new)
            # Longest first: a secret containing another is hidden whole.
            _known_sorted = tuple(sorted(_known, key=len, reverse=True))


def url_password(url: str) -> str | None:
    """The password of ``url``, or ``None``."""
    match = _URL_PASSWORD.search(url)
    if match:
        return match.group("secret") or None
    query = _QUERY_SECRET.search(url)
    return query.group("secret") if query else None


def redact_url(url: str) -> str:
    """``url`` with its password (and secret query parameters) replaced by ``***``."""
    return _QUERY_SECRET.sub(rf"\g<head>{MASK}", _URL_PASSWORD.sub(rf"\g<head>{MASK}@", url))


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every URL password and every known secret value (plus ``extra``) hidden."""
    if not text:
        return text
    text = redact_url(text) if "://" in text or "=" in text else text
    known = _known_sorted
    if extra:
        known = tuple(sorted({*known, *(e for e in extra if len(e) >= MIN_SECRET_LENGTH)}, key=len, reverse=True))
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_value(name: str, value: Any) -> Any:
    """A setting's value as it may be shown: ``***`` for a secret one (when set), strings with
    their URL passwords hidden, containers element by element."""
    if is_secret_name(name) and value not in ("", None):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(name, v) for v in value)
    return value


def secret_values(name: str, value: Any) -> list[str]:
    """The secrets a setting holds: all of it when its name is a secret's, else the passwords of
    the URLs in it (looking into mappings and lists)."""
    if hasattr(value, "get_secret_value"):  # pydantic's SecretStr
        value = value.get_secret_value()
    if isinstance(value, str):
        if is_secret_name(name):
            return [value] if value else []
        password = url_password(value)
        return [password] if password else []
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in secret_values(str(k), v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in secret_values(name, v)]
    return []


class RedactingFilter(logging.Filter):
    """A logging filter that hides secrets in a record's message and traceback; install it on
    handlers (:func:`install_log_redaction`) so that it sees the records of every logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatted here, hidden, and cached where formatters look for it.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_log_redaction(loggers: Iterable[str] = ("", "uvicorn", "uvicorn.error", "uvicorn.access")) -> None:
    """Add the redacting filter to every handler of these loggers (the root's by default, and
    uvicorn's, which do not propagate). Idempotent; call it after logging is configured."""
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)

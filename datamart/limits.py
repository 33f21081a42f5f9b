"""The datamart's limits (section ``datamart`` of ``featurestore.yaml``, see
:class:`~featurestore.config.DatamartConfig`): what one request may send.

:class:`DatamartLimits`, added in front of the app, answers 413 to a body beyond
``max_body_bytes`` (an upload beyond ``max_upload_bytes``), 414 and 431 to an overlong URL or
headers; the read routes call :func:`check_lookup_entities` and :func:`check_spine_rows`, which
refuse with 422 an online lookup of more than ``max_lookup_entities`` entities and a spine of more
than ``max_spine_rows`` rows. A server holding several projects applies the byte limits of its
first project, and each project's own entity and row limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from featurestore.config import CONFIG_FILE_NAME, DatamartConfig
from featurestore.errors import InvalidRequestError
from featurestore.request_limits import ASGIApp, RequestLimits

UPLOAD_PATH_SUFFIX = "/training-set/upload"
"""The route taking an uploaded spine (``/v1/...`` and ``/v1/projects/{project}/...``)."""


def is_upload(path: str) -> bool:
    return path.endswith(UPLOAD_PATH_SUFFIX)


class DatamartLimits(RequestLimits):
    """:class:`~featurestore.request_limits.RequestLimits` knowing the datamart's upload route."""

    def __init__(self, app: ASGIApp, *, config: DatamartConfig) -> None:
        super().__init__(app, config=config, is_upload=is_upload)


def check_lookup_entities(data: Any, limit: int) -> None:
    """Refuse an online lookup (its JSON body, parsed) of more than ``limit`` entities, before
    its keys are validated one by one. Costs a dict lookup and a ``len`` per key column."""
    entities = data.get("entities") if isinstance(data, dict) else None
    if not isinstance(entities, dict):
        return  # the body's validation says what is wrong
    for keys in entities.values():
        if isinstance(keys, list) and len(keys) > limit:
            raise InvalidRequestError(
                f"The lookup asks for {len(keys):,} entities, beyond the limit of {limit:,} per request: split it "
                f"into requests of at most {limit:,}, or raise datamart.max_lookup_entities in {CONFIG_FILE_NAME}"
            )


def check_spine_rows(spine: Mapping[str, Sequence[Any]] | Sequence[Any] | pa.Table, limit: int, what: str) -> None:
    """Refuse a spine (JSON columns or rows, or a table read from a file) of more than ``limit`` rows."""
    if isinstance(spine, pa.Table):
        rows = spine.num_rows
    elif isinstance(spine, Mapping):
        rows = max((len(v) for v in spine.values()), default=0)
    else:
        rows = len(spine)
    if rows > limit:
        raise InvalidRequestError(
            f"The {what} has {rows:,} rows, beyond the limit of {limit:,}: split it into several requests, "
            f"or raise datamart.max_spine_rows in {CONFIG_FILE_NAME}"
        )

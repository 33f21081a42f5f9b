"""The online lookup's body, built without pydantic for its common shape
(``datamart.routes.reads._common_request``): the same request pydantic's validation gives, and
every other shape left to pydantic, which words the errors."""

from __future__ import annotations

from typing import Any

import pytest

from datamart.payloads import OnlineFeaturesRequest
from datamart.routes.reads import _common_request

COMMON = [
    {"features": ["v:a", "v:b"], "entities": {"customer_id": [1, 2, 3]}},
    {"features": "credit_default", "entities": {"customer_id": [2**63 - 1, -(2**63)]}},
    {"features": ["v:a"], "entities": {"country": ["nl", "de"], "card_no": [1, 2]}, "full_feature_names": True},
    {"features": [], "entities": {"customer_id": []}},
]
OTHER = [
    {"features": ["v:a"], "entities": {"customer_id": [2**63]}},  # beyond int64
    {"features": ["v:a"], "entities": {"customer_id": [True]}},  # a boolean is no key
    {"features": ["v:a"], "entities": {"customer_id": [1, "2"]}},  # mixed types
    {"features": ["v:a"], "entities": {"customer_id": [1.0]}},  # a float is no key
    {"features": ["v:a", 3], "entities": {"customer_id": [1]}},
    {"features": ["v:a"], "entities": {"customer_id": 1}},
    {"features": ["v:a"], "entities": {"customer_id": [1]}, "full_feature_names": "yes"},
    {"features": ["v:a"], "entities": {"customer_id": [1]}, "extra": 1},
    {"features": ["v:a"]},
    {"entities": {"customer_id": [1]}},
    ["v:a"],
]


@pytest.mark.parametrize("body", COMMON)
def test_common_bodies_are_the_request_pydantic_validates(body: dict[str, Any]) -> None:
    built = _common_request(body)
    assert built is not None
    valid = OnlineFeaturesRequest.model_validate(body)
    assert built._asdict() == valid.model_dump()
    # The same objects' types too (a tuple for the list of features would compare unequal above).
    assert [type(v) for v in built] == [type(getattr(valid, f)) for f in built._fields]


@pytest.mark.parametrize("body", OTHER)
def test_other_bodies_are_left_to_pydantic(body: Any) -> None:
    # Whatever pydantic makes of them (it takes 1.0 as 1 and "yes" as true), it decides.
    assert _common_request(body) is None

"""The lookup's fast encodings: int64 keys as text (``featurestore.lookup._int64_keys``) and a
Redis ``MGET`` built by one string join (``featurestore.online.redis._mget_command``) give what
the slow ways give, and refuse what those refuse."""

from __future__ import annotations

import random

import pytest

from featurestore.lookup import _int64_keys
from featurestore.online.redis import _mget_command


@pytest.mark.parametrize(
    "keys",
    [
        [1],
        [0, -1, 42, 100_000],
        [2**63 - 1, -(2**63)],
        [10**18, -(10**18), 999_999_999_999_999_999],
        random.Random(0).sample(range(-(10**12), 10**12), 100),
    ],
)
def test_int64_keys_are_their_decimal_text(keys: list[int]) -> None:
    assert _int64_keys(keys) == list(map(str, keys))


@pytest.mark.parametrize(
    "keys",
    [
        [],
        [True],
        [1, False],
        [1.0],
        [1, 2.5],
        [1e20],
        ["1"],
        [1, None],
        [[1]],
        [2**63],
        [-(2**63) - 1],
        [2**64],
        [1, 2**70],
        [object()],
    ],
)
def test_int64_keys_refuse_anything_else(keys: list[object]) -> None:
    # None: the lookup then checks and words an error, or casts, the slow way.
    assert _int64_keys(keys) is None


def test_mget_command_is_what_hiredis_packs() -> None:
    hiredis = pytest.importorskip("hiredis")
    rng = random.Random(1)
    for prefix in ("p:v:", "bank:customer_spend:", ""):
        heads: dict[int, str] = {}
        for _ in range(50):
            keys = [
                str(rng.randint(-(10 ** rng.randint(0, 18)), 10 ** rng.randint(0, 18)))
                for _ in range(rng.randint(2, 200))
            ]
            keys += ['"abc"', '["a",7]', "a\r\nb"]
            expected = hiredis.pack_command(("MGET", *[prefix + k for k in keys]))
            assert _mget_command(prefix, keys, heads) == expected


def test_mget_command_leaves_non_ascii_keys_to_hiredis() -> None:
    assert _mget_command("p:", ['"é"', "1"], {}) is None
    assert _mget_command("é:", ["1", "2"], {}) is None

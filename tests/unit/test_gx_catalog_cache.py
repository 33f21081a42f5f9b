"""The Great Expectations catalog's cache file (featurestore.gx_catalog): a catalog read from it
answers as one read from the sources, parses no source while the files are unchanged, reads
again what changed, and works on without a cache it cannot write."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from featurestore import gx_catalog
from featurestore.gx_catalog import GxCatalog, cache_file
from tests.unit.test_gx_catalog import FILES

FIT = "expectations/core/expect_values_to_fit.py"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "great_expectations"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _answers(catalog: GxCatalog) -> tuple[object, ...]:
    fit = catalog.find("ExpectValuesToFit")
    assert fit is not None
    return (
        catalog.names(),
        repr(fit),
        catalog.find("expect_nothing_yet"),
        catalog.supported,
        fit.argument_problems({"column": "", "pattern": 3, "count": "x", "mode": "z", "extra": 1}),
    )


def _no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a source file was parsed")

    monkeypatch.setattr("featurestore.gx_catalog.ast.parse", refuse)


def test_a_catalog_from_the_cache_answers_the_same_without_parsing_a_source(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache" / "gx.json"
    uncached = _answers(GxCatalog(root, "1.24.1"))
    assert _answers(GxCatalog(root, "1.24.1", cache=cache)) == uncached  # reads the sources, writes the cache
    assert cache.is_file()
    _no_parsing(monkeypatch)
    assert _answers(GxCatalog(root, "1.24.1", cache=cache)) == uncached
    with pytest.raises(AssertionError, match="parsed"):  # another version: not this cache's
        GxCatalog(root, "1.25.0", cache=cache)


def test_a_changed_source_is_read_again(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "gx.json"
    before = GxCatalog(root, cache=cache).find("expect_values_to_fit")
    assert before is not None and before.arguments["count"].type.kind == "int"
    path = root / FIT
    path.write_text(path.read_text().replace("count: int", "count: str"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))  # same size, later
    after = GxCatalog(root, cache=cache).find("expect_values_to_fit")
    assert after is not None and after.arguments["count"].type.kind == "str"
    # A base class's file counts too: the inherited `column` argument goes.
    base = root / "expectations/expectation.py"
    base.write_text(base.read_text().replace('column: StrictStr = Field(min_length=1, description="the column")', ""))
    again = GxCatalog(root, cache=cache).find("expect_values_to_fit")
    assert again is not None and "column" not in again.arguments


def test_an_unreadable_or_unwritable_cache_is_no_error(root: Path, tmp_path: Path) -> None:
    expected = _answers(GxCatalog(root))
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": 1, "files": ')
    assert _answers(GxCatalog(root, cache=broken)) == expected
    wrong_shape = tmp_path / "wrong.json"
    wrong_shape.write_text("[1, 2]")
    assert _answers(GxCatalog(root, cache=wrong_shape)) == expected
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    assert _answers(GxCatalog(root, cache=blocked / "gx.json")) == expected  # its folder cannot be made


def test_the_installed_great_expectations_reads_the_same_from_its_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    gx_catalog.installed_catalog.cache_clear()
    try:
        first = gx_catalog.installed_catalog()
    finally:
        gx_catalog.installed_catalog.cache_clear()
    assert first is not None and first.version is not None
    cache = cache_file(first.root, first.version)
    assert cache is not None and cache.parent == tmp_path / "featurestore"
    uncached = GxCatalog(first.root, first.version)
    names = uncached.names()
    assert len(names) > 50 and first.names() == names
    assert cache.is_file()
    _no_parsing(monkeypatch)
    cached = GxCatalog(first.root, first.version, cache=cache)
    assert cached.names() == names
    assert all(repr(cached.find(n)) == repr(uncached.find(n)) for n in names)


def test_a_cache_others_can_write_is_not_read(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cache"
    cache = folder / "gx.json"
    expected = _answers(GxCatalog(root, "1.24.1", cache=cache))  # written, this user's own (0600 in 0700)
    assert cache.stat().st_mode & 0o077 == 0 and folder.stat().st_mode & 0o077 == 0
    _no_parsing(monkeypatch)
    assert _answers(GxCatalog(root, "1.24.1", cache=cache)) == expected  # read: no source parsed
    cache.chmod(0o666)  # anyone may have changed it: read the sources instead
    with pytest.raises(AssertionError, match="parsed"):
        GxCatalog(root, "1.24.1", cache=cache).find("expect_values_to_fit")
    cache.chmod(0o600)
    folder.chmod(0o777)  # a folder others can write: they could have replaced the file
    with pytest.raises(AssertionError, match="parsed"):
        GxCatalog(root, "1.24.1", cache=cache).find("expect_values_to_fit")
    folder.chmod(0o700)
    link = folder / "link.json"
    link.symlink_to(cache)  # a symbolic link is not followed
    with pytest.raises(AssertionError, match="parsed"):
        GxCatalog(root, "1.24.1", cache=link).find("expect_values_to_fit")


def test_no_home_and_no_absolute_xdg_cache_home_means_no_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_file(tmp_path, "1.24.1") is None
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # ignored, as the XDG specification says
    assert cache_file(tmp_path, "1.24.1") is None
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    found = cache_file(tmp_path, "1.24.1")
    assert found is not None and found.parent == tmp_path / "featurestore"
    gx_catalog.installed_catalog.cache_clear()
    monkeypatch.delenv("XDG_CACHE_HOME")
    try:
        catalog = gx_catalog.installed_catalog()  # works without a cache
    finally:
        gx_catalog.installed_catalog.cache_clear()
    assert catalog is not None and "expect_column_values_to_not_be_null" in catalog.names()

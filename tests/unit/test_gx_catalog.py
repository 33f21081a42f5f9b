"""featurestore.gx_catalog on a small fake Great Expectations package written here: which
classes are expectations, which class attributes are arguments, which are required, and the
verdicts on values, without Great Expectations installed or imported (tests/quality/
test_gx_catalog_against_gx.py checks the same answers against the real package)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from featurestore.gx_catalog import GxCatalog, GxExpectationSchema

FILES = {
    "__init__.py": "",
    "compatibility/__init__.py": "",
    "compatibility/pydantic.py": "from pydantic.v1 import *\n",
    "core/__init__.py": "",
    "core/types.py": """
        from datetime import date, datetime
        from typing import Union
        from great_expectations.core.suite_parameters import SuiteParameterDict
        Comparable = Union[float, SuiteParameterDict, date, datetime]
    """,
    "core/suite_parameters.py": """
        from typing_extensions import TypeAlias
        SuiteParameterDict: TypeAlias = dict
    """,
    "expectations/__init__.py": "",
    "expectations/model_field_types.py": """
        from typing import Union
        from great_expectations.compatibility.pydantic import Field
        from great_expectations.compatibility.typing_extensions import Annotated
        from great_expectations.core.suite_parameters import SuiteParameterDict
        MostlyField = Annotated[Union[float, SuiteParameterDict], Field(description="share", ge=0.0, le=1.0)]
    """,
    "expectations/window.py": """
        class Window:
            pass
    """,
    "expectations/expectation.py": '''
        from __future__ import annotations
        from typing import ClassVar, List, Optional, Union
        from great_expectations.compatibility import pydantic
        from great_expectations.compatibility.pydantic import Field, StrictStr
        from great_expectations.expectations.model_field_types import MostlyField
        from great_expectations.expectations.window import Window

        class Expectation(pydantic.BaseModel):
            """Base."""
            id: Union[str, None] = None
            catch_exceptions: bool = False
            windows: Optional[List[Window]] = None
            version: ClassVar[str] = "1"
            _private: int = 0

            def describe(self) -> str:
                return pydantic.validator("not_a_field")  # inside a method: not a validator

        class ColumnMapExpectation(Expectation):
            column: StrictStr = Field(min_length=1, description="the column")
            mostly: MostlyField = 1
            catch_exceptions: bool = True
            map_metric: ClassVar[Optional[str]] = None
    ''',
    "expectations/core/__init__.py": """
        from .expect_values_to_fit import ExpectValuesToFit
        from .expect_nothing_yet import ExpectNothingYet
    """,
    "expectations/core/expect_nothing_yet.py": """
        from great_expectations.expectations.expectation import ColumnMapExpectation

        class ExpectNothingYet(ColumnMapExpectation):
            pass
    """,
    "expectations/core/expect_values_to_fit.py": """
        from __future__ import annotations
        from typing import List, Literal, Optional
        from great_expectations.compatibility import pydantic
        from great_expectations.core.types import Comparable
        from great_expectations.expectations.expectation import ColumnMapExpectation

        class ExpectValuesToFit(ColumnMapExpectation):
            min_value: Optional[Comparable] = None
            mode: Literal["x", "y"] = "x"
            pattern: str
            items: List[str] = pydantic.Field(default_factory=list)
            count: int = pydantic.Field(description="how many")
            checked: Optional[str] = None
            map_metric = "column_values.fit"
            library_metadata = {"maturity": "production"}

            @pydantic.validator("checked")
            def _check(cls, v):
                return v
    """,
}


@pytest.fixture
def catalog(tmp_path: Path) -> GxCatalog:
    root = tmp_path / "great_expectations"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return GxCatalog(root)


def fit(catalog: GxCatalog) -> GxExpectationSchema:
    schema = catalog.find("expect_values_to_fit")
    assert schema is not None
    return schema


def test_expectations_are_the_concrete_classes_the_core_package_imports(catalog: GxCatalog) -> None:
    assert catalog.names() == ["expect_values_to_fit"]  # a map expectation without map_metric is abstract
    assert catalog.find("ExpectValuesToFit") == fit(catalog)
    assert catalog.find("expect_nothing_yet") is None
    assert catalog.find("ExpectationNotThere") is None


def test_arguments_are_the_pydantic_fields_of_the_class_and_its_bases(catalog: GxCatalog) -> None:
    arguments = fit(catalog).arguments
    assert list(arguments) == [
        "id",
        "catch_exceptions",
        "windows",
        "column",
        "mostly",
        "min_value",
        "mode",
        "pattern",
        "items",
        "count",
        "checked",
        "library_metadata",  # a plain class attribute is a pydantic v1 field
    ]
    # No default, and a type that does not admit None (Optional[...] does: pydantic v1 defaults it).
    assert {a.name for a in arguments.values() if a.required} == {"column", "pattern", "count"}


@pytest.mark.parametrize(
    ("kwargs", "problems"),
    [
        ({"column": "c", "pattern": "p", "count": 1}, []),
        ({"pattern": "p", "count": 1}, ["missing argument 'column'"]),
        (
            {"column": "c", "pattern": "p", "count": 1, "version": "2", "_private": 1},
            [
                "unknown argument 'version'; remove it or check the expectation's documented arguments",
                "unknown argument '_private'; remove it or check the expectation's documented arguments",
            ],
        ),
        (
            {"column": "", "pattern": "p", "count": 1},
            ["argument 'column': ensure this value has at least 1 characters"],
        ),
        ({"column": 1, "pattern": "p", "count": 1}, ["argument 'column': str type expected"]),
        ({"column": "c", "pattern": 1, "count": 1}, []),  # a plain str takes a number, as pydantic v1 does
        ({"column": "c", "pattern": "p", "count": "2"}, []),
        ({"column": "c", "pattern": "p", "count": "2.5"}, ["argument 'count': value is not a valid integer"]),
        (
            {"column": "c", "pattern": "p", "count": 1, "mostly": 2},
            ["argument 'mostly': ensure this value is less than or equal to 1.0"],
        ),
        ({"column": "c", "pattern": "p", "count": 1, "mostly": {"$PARAMETER": "m"}}, []),
        (
            {"column": "c", "pattern": "p", "count": 1, "min_value": "zero"},
            ["argument 'min_value': value is not a valid float"],
        ),
        ({"column": "c", "pattern": "p", "count": 1, "min_value": None}, []),
        (
            {"column": "c", "pattern": "p", "count": 1, "mode": "z"},
            ["argument 'mode': unexpected value; permitted: 'x', 'y'"],
        ),
        (
            {"column": "c", "pattern": "p", "count": 1, "items": ["a", ["b"]]},
            ["argument 'items.1': str type expected"],
        ),
        ({"column": "c", "pattern": "p", "count": None}, ["argument 'count': none is not an allowed value"]),
        ({"column": "c", "pattern": "p", "count": 1, "catch_exceptions": "yes"}, []),
        (
            {"column": "c", "pattern": "p", "count": 1, "catch_exceptions": "maybe"},
            ["argument 'catch_exceptions': value could not be parsed to a boolean"],
        ),
        (
            {"column": "c", "pattern": "p", "count": 1, "library_metadata": "x"},
            ["argument 'library_metadata': value is not a valid dict"],
        ),
    ],
)
def test_argument_values_are_judged_as_pydantic_v1_would(
    catalog: GxCatalog, kwargs: dict[str, object], problems: list[str]
) -> None:
    assert fit(catalog).argument_problems(kwargs) == problems


def test_what_only_great_expectations_can_tell_is_left_to_it(catalog: GxCatalog) -> None:
    arguments = fit(catalog).arguments
    assert arguments["checked"].problems("anything") is None  # its own validator may refuse it
    assert arguments["checked"].problems(["a"]) == [("", "str type expected")]  # refused before the validator
    assert arguments["windows"].problems([{"a": 1}]) is None  # a class of its own
    assert arguments["min_value"].problems("2024-01-01") is None  # maybe a date
    assert arguments["min_value"].problems(1.5) == []


def test_only_the_layout_of_a_1x_release_is_read(catalog: GxCatalog, tmp_path: Path) -> None:
    assert catalog.supported  # version unknown: read it
    assert GxCatalog(catalog.root, "1.24.1").supported
    assert not GxCatalog(catalog.root, "2.0.0").supported
    assert not GxCatalog(tmp_path / "elsewhere", "1.24.1").supported  # no expectations/core

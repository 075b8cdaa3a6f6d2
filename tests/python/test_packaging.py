"""What `pip install .` installs: the product's package and every subpackage of it, and not the
development tools (`retail_segments_dev`) or the tests, which run from the project folder."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def _packages_on_disk(top: str) -> set[str]:
    return {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_the_install_holds_the_product_and_not_the_development_tools() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    find = config["tool"]["setuptools"]["packages"]["find"]
    installed = set(
        find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ()))
    )

    product = _packages_on_disk("retail_segments")
    assert {"retail_segments", "retail_segments.ml", "retail_segments.ops"} <= product
    assert installed == product
    assert not _packages_on_disk("retail_segments_dev") & installed

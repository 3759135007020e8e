"""The project's own files agree with each other: one license, one version, a citation."""

from __future__ import annotations

import re

import yaml
from helpers import REPO

import effscale

PYPROJECT = (REPO / "pyproject.toml").read_text()  # tomllib is Python 3.11+; 3.10 is supported


def field(name: str) -> str:
    return re.search(rf'^{name} = (.+)$', PYPROJECT, re.M).group(1)


def test_the_license_file_is_the_license_pyproject_names() -> None:
    assert field("license") == '{ text = "MIT" }'
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n")


def test_the_version_is_pyprojects() -> None:
    # One place: effscale.__version__ is read from the installed package's metadata.
    assert field("version").strip('"') not in (REPO / "effscale" / "__init__.py").read_text()
    assert f'"{effscale.__version__}"' == field("version")


def test_the_citation_names_the_paper_and_the_tool() -> None:
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["license"] == "MIT" and "version" not in cff  # the version lives in pyproject
    paper = cff["references"][0]
    assert paper["title"].startswith("EfficientNet: Rethinking Model Scaling")
    assert [a["family-names"] for a in paper["authors"]] == ["Tan", "Le"]
    assert paper["year"] == 2019

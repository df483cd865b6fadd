"""The install files agree: environment.yml (conda-forge) pins what requirements.txt pins."""

import re

import yaml

from tests.support import ROOT


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_environment_yml_pins_exactly_the_runtime_requirements():
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pinned[_canonical(name)] = version
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    conda, pip = {}, {}
    for dep in environment["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                name, version = line.split("#")[0].strip().split("==")
                pip[_canonical(name)] = version
        elif dep not in ("pip",) and not dep.startswith("python="):
            name, version = dep.split("=")
            conda[_canonical(name)] = version
    assert not set(conda) & set(pip)
    assert {**conda, **pip} == pinned

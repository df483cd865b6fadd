"""The install files agree, and the package installs.

environment.yml (conda-forge) pins what requirements.txt pins; pyproject.toml's ranges hold those
pins and name every library the package imports. The wheel, installed into a fresh venv and run
from another folder, imports the client without the web app, has the same commands as
``manage.py``, and serves the pages with their templates and static files.
"""

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import venv
from pathlib import Path

import pytest
import requests
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.support import BACKEND, ROOT, interrupt, ping_through
from tests.test_up import free_port


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pinned[_canonical(name)] = version
    return pinned


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_pins_exactly_the_runtime_requirements():
    pinned = _pins()
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


def test_every_dependency_range_holds_its_pin():
    pinned = _pins()
    outside = {}
    for line in _project()["dependencies"]:
        requirement = Requirement(line)
        name = _canonical(requirement.name)
        if name not in pinned:
            outside[name] = "not pinned in requirements.txt"
        elif not requirement.specifier.contains(pinned[name]):
            outside[name] = f"{pinned[name]} is outside {requirement.specifier}"
        for extra in requirement.extras:  # psycopg[binary] installs psycopg-binary at the same version
            if pinned.get(f"{name}-{extra}") != pinned.get(name):
                outside[f"{name}-{extra}"] = "not pinned at the same version"
    assert outside == {}


def test_every_library_the_package_imports_is_a_dependency():
    declared = {_canonical(Requirement(line).name) for line in _project()["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for path in (ROOT / "viewer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "viewer" or top.startswith("_"):
                    continue
                if not {_canonical(d) for d in distributions.get(top, [top])} & declared:
                    undeclared.setdefault(top, str(path.relative_to(ROOT)))
    assert undeclared == {}, "imported but not in pyproject.toml's dependencies"


# --- the wheel, installed into a fresh venv ------------------------------------------------------

installs = pytest.mark.skipif(BACKEND != "embedded", reason="backend-independent: runs with the embedded suite")


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without the test's settings or any path into the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_") and k != "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _source_files() -> list[str]:
    """What a clone with this work tree's changes holds: tracked and new files, not ignored ones."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


class Installed:
    def __init__(self, prefix: Path, elsewhere: Path):
        self.prefix = prefix
        self.elsewhere = elsewhere  # a folder that is not the checkout: every command runs here
        self.python = prefix / "bin" / "python"
        self.viewer = prefix / "bin" / "viewer"

    def run(self, *argv: str, env: dict[str, str] | None = None, timeout: float = 120):
        result = subprocess.run(list(argv), cwd=self.elsewhere, env=env or _clean_env(), capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """The project built into a wheel from a copy of the work tree and installed into a fresh venv.

    Nothing is downloaded: the wheel is built by the test venv's own setuptools (`make install`
    puts it there) and installed without dependencies into a venv that sees the test venv's
    site-packages through a .pth file (the pinned dependencies, already installed), the way
    ``--system-site-packages`` would see a system's. The copy keeps setuptools' build/ folder out
    of the checkout.
    """
    if Version(importlib.metadata.version("setuptools")) < Version("70.1"):
        pytest.fail("this venv's setuptools is older than pyproject.toml's build requirement (>=70.1): "
                    "run `make install`", pytrace=False)
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    for name in _source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                            "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(tmp / "dist"),
                            str(source)], cwd=tmp, env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp / "dist").glob("model_results_viewer-*.whl")

    prefix = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(prefix)
    paths = sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})
    ours = sysconfig.get_paths()
    Path(paths["purelib"], "test-venv-dependencies.pth").write_text(
        "\n".join(dict.fromkeys([ours["purelib"], ours["platlib"]])) + "\n")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    installed = Installed(prefix, elsewhere)
    installed.run(str(installed.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  "--no-deps", "--no-index", str(wheel))
    return installed


@installs
@pytest.mark.timeout(300)
def test_the_installed_package_comes_from_the_venv_and_holds_every_file(installed):
    found = json.loads(installed.run(str(installed.python), "-c", "import json, viewer; print(json.dumps(viewer.__file__))"))
    package = Path(found).parent
    assert package.is_relative_to(installed.prefix), found
    assert not package.is_relative_to(ROOT), found
    wanted = {}
    for name in _source_files():
        if name.startswith("viewer/"):
            wanted[name.removeprefix("viewer/")] = ROOT / name
        elif name.startswith("templates/"):
            wanted[name] = ROOT / name  # the wheel maps templates/ to viewer/templates/
    missing = [name for name in wanted if not (package / name).is_file()]
    differ = [name for name, path in wanted.items()
              if (package / name).is_file() and (package / name).read_bytes() != path.read_bytes()]
    assert (missing, differ) == ([], [])


@installs
@pytest.mark.timeout(300)
def test_the_client_imports_from_any_folder_without_the_web_app(installed):
    """`import viewer.client` loads what importing requests, pandas and pyarrow loads, and viewer."""
    def loaded(imports: str) -> set[str]:
        code = f"import json, sys; import {imports}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
        return set(json.loads(installed.run(str(installed.python), "-I", "-c", code)))  # -I: no cwd, no PYTHON*

    client = loaded("viewer.client")
    assert client - loaded("requests, pandas, pyarrow") == {"viewer"}
    assert not client & {"flask", "werkzeug", "celery", "kombu", "sqlalchemy", "flask_sqlalchemy", "flask_login",
                         "bokeh", "sklearn", "scipy", "joblib"}


def _commands(help_text: str) -> list[str]:
    section = help_text.split("Commands:", 1)[1]
    return sorted(line.split()[0] for line in section.splitlines() if line.startswith("  ") and line.split())


@installs
@pytest.mark.timeout(300)
def test_the_viewer_command_has_the_commands_of_manage_py(installed):
    installed_help = installed.run(str(installed.viewer), "--help")
    manage = subprocess.run([sys.executable, "manage.py", "--help"], cwd=ROOT, env=_clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert manage.returncode == 0, manage.stderr
    assert _commands(installed_help) == _commands(manage.stdout)
    assert {"init-db", "up", "run", "worker", "demo", "create-token"} <= set(_commands(installed_help))


@installs
@pytest.mark.timeout(300)
def test_an_installed_copy_keeps_its_data_in_its_prefix_by_default(installed):
    """Not in the folder it was started from: the web app and a worker started elsewhere agree."""
    out = installed.run(str(installed.viewer), "init-db")
    database = installed.prefix / "var" / "viewer.app-instance" / "viewer.sqlite3"
    assert f"Database ready: sqlite:///{database}" in out
    assert database.is_file() and not any(installed.elsewhere.iterdir())


@installs
@pytest.mark.timeout(300)
def test_the_installed_viewer_up_serves_pages_static_files_and_runs_jobs(installed, tmp_path):
    port = free_port()
    env = _clean_env(VIEWER_DATA_DIR=str(tmp_path / "data"))  # a fresh embedded install: SQLite, filesystem broker
    log = open(tmp_path / "up.log", "w+")
    proc = subprocess.Popen([str(installed.viewer), "up", f"--port={port}"], cwd=installed.elsewhere, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        password = None
        while time.monotonic() < deadline and password is None:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            log.seek(0)
            found = re.search(r"Log in as 'admin' with password: (\S+)", log.read())
            password = found and found.group(1)
            time.sleep(0.2)
        assert password, (tmp_path / "up.log").read_text()
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)

        session = requests.Session()
        login = session.get(f"{base}/login", timeout=5)
        assert login.status_code == 200 and login.headers["Content-Type"].startswith("text/html")
        assert "<form" in login.text and 'name="password"' in login.text  # login.html, from the wheel
        css = session.get(f"{base}/static/app.css", timeout=5)
        assert css.status_code == 200 and css.content == (ROOT / "viewer" / "static" / "app.css").read_bytes()
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login.text).group(1)
        home = session.post(f"{base}/login", data={"username": "admin", "password": password, "csrf_token": csrf},
                            timeout=5)
        assert home.status_code == 200 and "Welcome, admin" in home.text

        # The installed worker takes jobs through the embedded broker.
        token = installed.run(str(installed.viewer), "create-token", "admin", env=env).strip()
        headers = {"Authorization": f"Bearer {token}"}
        assert ping_through(base, headers)["state"] == "done", (tmp_path / "up.log").read_text()
    finally:
        code = interrupt(proc, log)  # Ctrl-C: `up` stops its web app and worker
    assert code == 0, (tmp_path / "up.log").read_text()
    assert not any(installed.elsewhere.iterdir()), "wrote into the folder it was started from"

"""The package as users get it: a wheel and an sdist that `twine check` accepts, installed into
a clean virtual environment, whose console script and quick-start demo work from there.

The build runs without isolation (setuptools comes from the dev extra) and the install reuses
the running environment's site-packages for dependencies (`--system-site-packages`,
`--no-index`): nothing is downloaded, and a missing or wrongly declared dependency still fails
the install. Every command runs with its working directory outside the checkout, so what is
imported is the installed wheel, never the source tree.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

import mcp_oauth_shim

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# The one place the version is written; the build reads it from there (pyproject.toml).
VERSION = mcp_oauth_shim.__version__
COMMAND_TIMEOUT_S = 300


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class InstalledWheel:
    python: Path
    scripts: Path
    outside: Path  # a working directory with no checkout in it


def run(args: list[str | Path], cwd: Path, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    # A copy of the checkout's tracked and new files: building in place would leave build/ and
    # *.egg-info behind in the developer's tree.
    source = tmp_path_factory.mktemp("source") / "mcp-oauth-shim"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "node_modules", "__pycache__", "*.egg-info", "build", "dist", ".venv", "site", ".peers",
    ))
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source], cwd=out)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel=wheel, sdist=sdist)


@pytest.fixture(scope="module")
def installed(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    venv = tmp_path_factory.mktemp("venv") / "env"
    outside = tmp_path_factory.mktemp("elsewhere")
    run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv], cwd=outside)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-index",
         "--disable-pip-version-check", dist.wheel], cwd=outside)
    return InstalledWheel(python=python, scripts=venv / "bin", outside=outside)


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(name))


def test_twine_check_accepts_the_wheel_and_the_sdist(dist: Dist) -> None:
    done = run([sys.executable, "-m", "twine", "check", "--strict", dist.wheel, dist.sdist], cwd=dist.wheel.parent)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_wheel_carries_the_consent_page_the_typing_marker_the_dev_idp_and_the_licence(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as archive:
        names = set(archive.namelist())
    expected = {
        "mcp_oauth_shim/templates/consent.html",
        "mcp_oauth_shim/py.typed",
        "mcp_oauth_shim/dev_idp/__init__.py",
        "mcp_bridge/__init__.py",
        f"mcp_oauth_shim-{VERSION}.dist-info/licenses/LICENSE",
    }
    assert expected <= names, expected - names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "bench/"))]


def test_sdist_carries_the_changelog_docs_and_examples(dist: Dist) -> None:
    root = f"mcp_oauth_shim-{VERSION}/"
    with tarfile.open(dist.sdist) as archive:
        names = set(archive.getnames())
    expected = {root + p for p in ("CHANGELOG.md", "LICENSE", "README.md", "mkdocs.yml", "docs/index.md", "examples/demo.py")}
    assert expected <= names, expected - names


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("Name", "mcp-oauth-shim"),
        ("Version", VERSION),
        ("License-Expression", "MIT"),
        ("Requires-Python", ">=3.11"),
        ("Description-Content-Type", "text/markdown"),
        ("Author", "mcp-oauth-shim maintainers"),
    ],
)
def test_wheel_metadata_field(dist: Dist, field: str, expected: str) -> None:
    assert wheel_metadata(dist.wheel)[field] == expected


def test_wheel_metadata_has_classifiers_keywords_and_the_readme(dist: Dist) -> None:
    metadata = wheel_metadata(dist.wheel)
    classifiers = metadata.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Typing :: Typed" in classifiers
    assert "oauth" in (metadata["Keywords"] or "").split(",")
    assert metadata.get_payload().startswith("# mcp-oauth-shim")


def test_installed_wheel_is_what_python_imports_outside_the_checkout(installed: InstalledWheel) -> None:
    done = run([installed.python, "-c",
                "import importlib.metadata as m, mcp_oauth_shim, mcp_bridge; "
                "print(mcp_oauth_shim.__file__); print(mcp_bridge.__file__); print(m.version('mcp-oauth-shim'))"],
               cwd=installed.outside)
    shim_file, bridge_file, version = done.stdout.split()
    venv = installed.python.parent.parent
    assert Path(shim_file).is_relative_to(venv) and Path(bridge_file).is_relative_to(venv), done.stdout
    assert version == VERSION


def test_installed_console_script_shows_its_commands(installed: InstalledWheel) -> None:
    done = run([installed.scripts / "mcp-oauth-shim", "--help"], cwd=installed.outside)
    assert "serve" in done.stdout and "doctor" in done.stdout, done.stdout


def test_installed_console_script_reports_the_version(installed: InstalledWheel) -> None:
    done = run([installed.scripts / "mcp-oauth-shim", "--version"], cwd=installed.outside)
    assert done.stdout.strip() == f"mcp-oauth-shim {VERSION}"


def test_demo_self_check_passes_against_the_installed_wheel(installed: InstalledWheel) -> None:
    # The examples are copied out of the checkout: demo.py puts its own folder on sys.path,
    # and nothing else of the checkout may be importable.
    examples = installed.outside / "examples"
    shutil.copytree(REPO / "examples", examples, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    done = run([installed.python, examples / "demo.py", "--self-check"], cwd=installed.outside)
    assert "SELF-CHECK PASS" in done.stdout, done.stdout

"""docs/testing.md's first example, copied into a fresh project with a fresh virtual environment, passes.

The project's files are the fenced blocks of the section "Your first test, from
zero" whose first line is a path comment, written as they stand. The package is
installed from this checkout the way a user installs it (not editable), with
the ``testing`` extra. The environment is kept between runs under pytest's
temporary root, keyed by the Python version and pyproject.toml; only the
package is reinstalled each time.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service_missing

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "testing.md"
SECTION = "## Your first test, from zero"
BLOCK = re.compile(r"^```(?:python|toml)\n# (?P<path>[\w./-]+)\n(?P<body>.*?)^```$", re.M | re.S)
# pip's words for an index it cannot reach or a release it cannot find there.
UNREACHABLE = (
    "Could not find a version",
    "No matching distribution",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


def project_files() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    files = {m["path"]: f"# {m['path']}\n{m['body']}" for m in BLOCK.finditer(text[start:end])}
    assert {"pyproject.toml", "myshop/app.py", "tests/test_welcome_email.py"} <= set(files), files.keys()
    return files


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OXIDE_", "QUEUE_", "REDIS_", "DB_", "DATABASE_", "PYTEST_", "PYTHON", "VIRTUAL_ENV"))
    }
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def fresh_venv(cache: Path) -> Path:
    """A virtual environment with this checkout installed (re-installed on each call) and pytest."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + sys.version.encode()).hexdigest()[:16]
    venv = cache / f"oxide-fresh-project-venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        made = run([sys.executable, "-m", "venv", str(venv)], cache)
        assert made.returncode == 0, made.stderr
        installed = run([str(python), "-m", "pip", "install", "-q", f"{REPO}[testing]", "pytest"], cache)
        if installed.returncode != 0:
            output = installed.stdout + installed.stderr
            if any(words in output for words in UNREACHABLE):
                service_missing(f"the package index ({output.strip().splitlines()[-1]})", "check pip's index settings")
            pytest.fail(f"pip install {REPO}[testing] failed:\n{output}", pytrace=False)
        (venv / ".complete").touch()
        return python
    # The cached environment has the dependencies; this checkout's code may have changed since.
    reinstalled = run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(REPO)], cache)
    assert reinstalled.returncode == 0, reinstalled.stdout + reinstalled.stderr
    return python


@pytest.mark.slow
def test_the_documented_example_passes_in_a_fresh_project(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    files = project_files()
    project = tmp_path / "myshop-project"
    for path, body in files.items():
        target = project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    # Kept across sessions: pytest removes old numbered roots, not what sits beside them.
    python = fresh_venv(tmp_path_factory.getbasetemp().parent)

    result = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)

    tests = sum(body.count("\ndef test_") for path, body in files.items() if path.startswith("tests/test_"))
    assert tests == 6
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"^{tests} passed in ", result.stdout, re.M), result.stdout
    assert "oxide_app" not in result.stdout  # no complaint about the configuration

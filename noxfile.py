"""nox sessions; tox.ini mirrors them.

``nox -s tests`` runs the README's test command, ``python -m pytest`` (the whole suite, as
``.ci/run`` and CI do), once per Python of PYTHONS.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"
PYTHONS = ["3.11", "3.12", "3.13"]


def _select_pyenv_pythons() -> None:
    """Let pyenv's shims answer for every Python in PYTHONS that pyenv has installed.

    A shim such as ``python3.12`` only runs versions that pyenv has selected (``pyenv
    global``/``local``/``shell``), so on a machine whose global version is 3.11 the
    other interpreters look missing: nox skips their sessions locally and fails them
    on CI. nox resolves shims through ``PYENV_VERSION``, so the newest installed patch
    release of each wanted X.Y is added to it, after the versions already selected.
    Without pyenv this does nothing.
    """
    root = os.environ.get("PYENV_ROOT")
    if not root or not Path(root, "versions").is_dir():
        return
    chosen: list[str] = []
    for xy in PYTHONS:
        pattern = re.compile(rf"{re.escape(xy)}\.(\d+)")
        patches = [(int(m[1]), p.name) for p in Path(root, "versions").iterdir() if (m := pattern.fullmatch(p.name))]
        if patches:
            chosen.append(max(patches)[1])
    if not chosen:
        return
    active = os.environ.get("PYENV_VERSION")
    if active is None:
        try:
            active = subprocess.run(["pyenv", "version-name"], capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            active = ""
    selected = [v for v in active.strip().split(":") if v and v != "system"]
    os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys([*selected, *chosen]))


_select_pyenv_pythons()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The README's test command, ``python -m pytest``: the whole suite (servers as for pytest alone)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """The same command on tests/integration only: the part that needs the servers."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", "tests/integration", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy", "--strict", "oxide")


@nox.session(venv_backend="none")
def deploy(session: nox.Session) -> None:
    """The workflow and deployment files: actionlint, schemas, hadolint, units; Redis 6.2 (.ci/check-deploy)."""
    session.run("bash", ".ci/check-deploy", external=True)


@nox.session
def mutation(session: nox.Session) -> None:
    """The full mutation run over the core modules ([tool.mutmut] in pyproject.toml); slow.

    Results stay in mutants/ (git-ignored): `mutmut results` lists survivors, `mutmut show NAME`
    prints one mutant's diff. CI runs a small fixed subset instead: .ci/mutation-subset.
    """
    session.install("-e", ".[dev]")
    session.env["HYPOTHESIS_PROFILE"] = "ci"
    session.run("mutmut", "run", *session.posargs)
    session.run("mutmut", "results")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks (docs/performance.md): ``nox -s bench``, or ``nox -s bench -- --smoke`` (CI, under a minute)."""
    session.install("-e", ".[bench]")
    # arq pins redis-py below 6, which celery's Redis transport refuses; arq runs fine on 6.x.
    session.install("--no-deps", "arq>=0.26")
    session.run("python", "-m", "bench", *session.posargs)

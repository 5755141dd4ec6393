"""nox sessions; tox.ini mirrors them. ``nox -s tests`` runs unit + property tests."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "integration", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"
PYTHONS = ["3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Unit and property tests (no servers needed)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "tests/unit", "tests/property", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Integration and fault tests against the real Redis, PostgreSQL and MariaDB."""
    session.install("-e", ".[test]")
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

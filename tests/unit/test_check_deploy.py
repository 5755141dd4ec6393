"""The rule that the CI workflow runs what ``.ci/run`` runs (``.ci/check_deploy.py``).

``.ci/run`` is the CI entry point and runs the README's test command; the workflow may run its
command lines and nothing else, all of them, its tests on every Python of noxfile's PYTHONS and
against Redis 6.2, 7 and latest. These tests build workflows from the repository's own
``.ci/run`` and README and show the check accepting the faithful one and refusing each kind of
drift. ``.ci/check-deploy`` also runs the check on the real workflow and on broken copies of it.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHONS = ["3.11", "3.12", "3.13"]
PYTEST = ".venv/bin/python -m pytest"


def _load_check_deploy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_deploy", ROOT / ".ci" / "check_deploy.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_deploy = _load_check_deploy()
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def faithful_workflow() -> dict[str, Any]:
    """A workflow whose jobs run exactly .ci/run's commands: the tests in a matrix job, the rest in one."""
    commands = check_deploy.ci_run_commands(CI_RUN)
    return {
        "jobs": {
            "lint": {"steps": [{"uses": "actions/checkout@v4"}] + [{"run": c} for c in commands if c != PYTEST]},
            "tests": {
                "strategy": {
                    "matrix": {
                        "python": list(PYTHONS),
                        "redis": ["latest"],
                        "include": [{"python": "3.12", "redis": "6.2"}, {"python": "3.12", "redis": "7"}],
                    }
                },
                "steps": [{"run": f"bash tests/oracle/build.sh\n{PYTEST}\n"}],
            },
        }
    }


def problems(workflow: dict[str, Any], ci_run: str = CI_RUN, readme: str = README) -> list[str]:
    found: list[str] = check_deploy.workflow_problems(workflow, ci_run, readme, PYTHONS, "ci.yml")
    return found


def replace_run(workflow: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    changed = copy.deepcopy(workflow)
    hits = 0
    for job in changed["jobs"].values():
        for step in job["steps"]:
            if old in step.get("run", ""):
                step["run"] = step["run"].replace(old, new)
                hits += 1
    assert hits == 1, f"{old!r} is in {hits} steps"
    return changed


def test_ci_run_commands_are_its_top_level_command_lines() -> None:
    commands = check_deploy.ci_run_commands(CI_RUN)
    for expected in ("python3 -m venv .venv", "bash tests/oracle/build.sh", PYTEST, "bash .ci/check-deploy"):
        assert expected in commands
    # Not its shell structure, its helpers, nor the commands of its own local servers.
    assert not [c for c in commands if c.startswith(("say ", "set ", "cd ", "export ", "fi", "}", "wait_for"))]
    assert not [c for c in commands if "redis-server --daemonize" in c or "pg_ctlcluster" in c]


def test_readme_has_one_test_command_and_it_ends_in_ci_runs_pytest() -> None:
    command = check_deploy.readme_test_command(README)
    assert command is not None
    assert command.startswith("python3 -m venv .venv && ")
    assert command.endswith(f" && {PYTEST}")


def test_a_workflow_running_exactly_ci_runs_commands_passes() -> None:
    assert problems(faithful_workflow()) == []


def test_the_readme_command_itself_may_be_a_step() -> None:
    command = check_deploy.readme_test_command(README)
    workflow = replace_run(faithful_workflow(), PYTEST, command)
    # The README's command line stands for the tests; .ci/run's own pytest line must still be run.
    assert problems(workflow) == [f"ci.yml: no job runs .ci/run's `{PYTEST}`"]


@pytest.mark.parametrize(
    "other",
    [
        "nox -s tests",  # a second way to run the tests
        f"{PYTEST} tests/unit",  # a part of the suite only
        "python -m pytest",  # outside the project's virtual environment
    ],
)
def test_a_test_step_other_than_ci_runs_fails(other: str) -> None:
    found = problems(replace_run(faithful_workflow(), PYTEST, other))
    assert f"ci.yml: jobs.tests: `{other}` is not a command of .ci/run nor the README's test command" in found
    assert f"ci.yml: no job runs .ci/run's `{PYTEST}`" in found


def test_a_lint_step_other_than_ci_runs_fails() -> None:
    found = problems(replace_run(faithful_workflow(), ".venv/bin/mypy --strict oxide", "nox -s typecheck"))
    assert "ci.yml: jobs.lint: `nox -s typecheck` is not a command of .ci/run nor the README's test command" in found
    assert "ci.yml: no job runs .ci/run's `.venv/bin/mypy --strict oxide`" in found


def test_ci_runs_commands_in_another_order_fail() -> None:
    workflow = replace_run(
        faithful_workflow(), f"bash tests/oracle/build.sh\n{PYTEST}\n", f"{PYTEST}\nbash tests/oracle/build.sh\n"
    )
    assert problems(workflow) == ["ci.yml: jobs.tests: runs .ci/run's commands in another order than .ci/run"]


def test_a_command_of_ci_run_that_no_job_runs_fails() -> None:
    workflow = faithful_workflow()
    workflow["jobs"]["lint"]["steps"] = [
        s for s in workflow["jobs"]["lint"]["steps"] if s.get("run") != "bash .ci/check-deploy"
    ]
    assert problems(workflow) == ["ci.yml: no job runs .ci/run's `bash .ci/check-deploy`"]


def test_a_workflow_without_the_tests_fails() -> None:
    workflow = faithful_workflow()
    del workflow["jobs"]["tests"]
    assert "ci.yml: no job runs the README's tests" in problems(workflow)


def test_ci_run_not_running_the_readmes_command_fails() -> None:
    readme = README.replace(f"&& {PYTEST}\n", f"&& {PYTEST} -x\n")
    assert readme != README
    assert problems(faithful_workflow(), readme=readme) == [f".ci/run: does not run the README's `{PYTEST} -x`"]


def test_pythons_other_than_noxfiles_fail() -> None:
    workflow = faithful_workflow()
    workflow["jobs"]["tests"]["strategy"]["matrix"]["python"] = ["3.12", "3.13"]
    workflow["jobs"]["tests"]["strategy"]["matrix"]["include"] = [{"python": "3.12", "redis": v} for v in ("6.2", "7")]
    assert problems(workflow) == [f"ci.yml: jobs.tests: the tests must run on noxfile's PYTHONS {PYTHONS}"]


def test_a_redis_matrix_without_6_2_fails() -> None:
    workflow = faithful_workflow()
    workflow["jobs"]["tests"]["strategy"]["matrix"]["include"] = [{"python": "3.12", "redis": "7"}]
    assert problems(workflow) == ["ci.yml: jobs.tests: the tests must also run against Redis ['6.2']"]


def test_the_repositorys_workflow_passes() -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8"))
    assert problems(workflow) == []
    assert PYTEST in check_deploy.run_lines(workflow["jobs"]["tests"])


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["queue:work", "--queue=a", "--stop-timeout=60"], False),
        (["queue:work", "--queue=a"], True),  # SIGKILL would come before any job is given back
        (["queue:work", "--queue=a", "--stop-timeout=70"], True),  # too close to a 75 s grace
    ],
)
def test_a_worker_command_must_give_back_its_jobs_before_the_grace_periods_sigkill(
    argv: list[str], refused: bool
) -> None:
    before = len(check_deploy.problems)
    check_deploy.check_stop_timeout(argv, 75.0, "deploy/x")
    found = check_deploy.problems[before:]
    del check_deploy.problems[before:]
    assert bool(found) is refused, found

"""What the schemas cannot see: the deployment files agree with each other and with the project.

Run by ``.ci/check-deploy`` with its tools environment (ruamel.yaml, supervisor). Checks:

- deploy/compose.yaml: every ``queue-*`` service runs ``queue:work`` from the one image, stops with
  SIGTERM, waits the grace period, restarts, and has a whole number of replicas; every worker
  command (here, in systemd and in supervisor) gives back what still runs, ``--stop-timeout``, at
  least 10 s before the grace period's SIGKILL;
- deploy/systemd: ``systemd-analyze verify`` accepts each unit, and each matches its compose pool
  (queues, SIGTERM, TimeoutStopSec = the grace period, Restart=always);
- deploy/supervisor: supervisord's own parser accepts the file, and each program matches its
  compose pool (queues, numprocs = replicas, stopwaitsecs = the grace period);
- .github/workflows/ci.yml runs what .ci/run runs: every line of a ``run:`` step is a command line
  of .ci/run (or the README's test command), in .ci/run's order, every command of .ci/run but its
  wait for local servers is run by some job, and each part of the README's test command is a
  command of .ci/run;
  the Python matrix is noxfile's PYTHONS, the Redis matrix holds 6.2, 7 and latest, the test URLs
  are tests/conftest.py's defaults, and its service images are those of compose.yaml;
- docs/deployment.md names every deployment file and the grace period.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import getpass
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
problems: list[str] = []


def check(ok: bool, message: str) -> None:
    if not ok:
        problems.append(message)


def load_yaml(path: Path) -> Any:
    from ruamel.yaml import YAML  # the tools environment's; the workflow rules below need no YAML

    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


def seconds(text: str) -> float:
    """A compose duration (``1m30s``, ``75s``, ``500ms``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * unit[u] for n, u in parts)


def stop_timeout_of(argv: list[str]) -> float | None:
    for arg in argv:
        if arg.startswith("--stop-timeout="):
            return float(arg.split("=", 1)[1])
    return None


def check_stop_timeout(argv: list[str], grace: float, where: str) -> None:
    """The worker gives back what still runs before the supervisor's SIGKILL: 10 s below the grace at least."""
    timeout = stop_timeout_of(argv)
    check(timeout is not None, f"{where}: queue:work needs --stop-timeout=SECONDS below the grace period")
    if timeout is not None:
        check(
            0 < timeout <= grace - 10, f"{where}: --stop-timeout={timeout:g} must leave 10 s of the {grace:g} s grace"
        )


def queues_of(argv: list[str]) -> str | None:
    for arg in argv:
        if arg.startswith("--queue="):
            return arg.split("=", 1)[1]
    return None


def compose_pools() -> tuple[dict[str, dict[str, Any]], float]:
    """The worker pools of deploy/compose.yaml: pool name -> queues, replicas; and the grace period."""
    compose = load_yaml(ROOT / "deploy/compose.yaml")
    services = compose["services"]
    images = {name: svc.get("image") for name, svc in services.items()}
    check(len(set(images.values())) == 1, f"deploy/compose.yaml: services use different images: {images}")
    check("app" in services, "deploy/compose.yaml: no app service")
    pools: dict[str, dict[str, Any]] = {}
    graces = set()
    for name, svc in services.items():
        if not name.startswith("queue-"):
            continue
        where = f"deploy/compose.yaml: services.{name}"
        command = svc.get("command", [])
        check(command[:1] == ["queue:work"], f"{where}.command: expected queue:work ..., got {command}")
        check(svc.get("stop_signal") == "SIGTERM", f"{where}.stop_signal: expected SIGTERM")
        check(svc.get("restart") in ("always", "unless-stopped"), f"{where}.restart: workers exit on purpose")
        replicas = svc.get("deploy", {}).get("replicas")
        check(isinstance(replicas, int) and replicas >= 1, f"{where}.deploy.replicas: expected a whole number >= 1")
        try:
            grace = seconds(str(svc.get("stop_grace_period")))
        except ValueError as exc:
            check(False, f"{where}.stop_grace_period: {exc}")
            continue
        # Docker's default is 10 s; the worker needs the longest job's time plus recording it.
        check(grace >= 30, f"{where}.stop_grace_period: {grace:g} s is too short for a job to finish")
        graces.add(grace)
        check_stop_timeout(command, grace, f"{where}.command")
        pools[name.removeprefix("queue-")] = {"queues": queues_of(command), "replicas": replicas}
    check(len(graces) == 1, f"deploy/compose.yaml: workers' stop_grace_period differ: {sorted(graces)}")
    check(
        {"default", "emails"} <= set(pools),
        f"deploy/compose.yaml: expected queue-default and queue-emails, got {sorted(pools)}",
    )
    return pools, graces.pop() if graces else 0.0


def check_systemd(pools: dict[str, dict[str, Any]], grace: float, scratch: Path) -> None:
    units = sorted((ROOT / "deploy/systemd").glob("*.service"))
    check(bool(units), "deploy/systemd: no unit files")
    for unit in units:
        where = f"deploy/{unit.relative_to(ROOT / 'deploy')}"
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(unit.read_text(encoding="utf-8"))
        service = parser["Service"]
        argv = shlex.split(service["ExecStart"])
        pool = unit.name.removeprefix("oxide-queue-").split("@")[0]
        check(pool in pools, f"{where}: no queue-{pool} service in deploy/compose.yaml")
        if pool in pools:
            check(queues_of(argv) == pools[pool]["queues"], f"{where}: ExecStart queues differ from queue-{pool}")
        check(argv[1:2] == ["queue:work"], f"{where}: ExecStart must run queue:work")
        check_stop_timeout(argv, grace, f"{where}: ExecStart")
        check(service.get("KillSignal") == "SIGTERM", f"{where}: KillSignal=SIGTERM expected")
        check(float(service.get("TimeoutStopSec", "0")) == grace, f"{where}: TimeoutStopSec must be {grace:g}")
        check(service.get("Restart") == "always", f"{where}: Restart=always expected")
        # systemd-analyze wants the program to exist: verify a copy that runs /bin/true instead.
        instance = scratch / unit.name.replace("@.service", "@1.service")
        instance.write_text(unit.read_text(encoding="utf-8").replace(argv[0], "/bin/true"), encoding="utf-8")
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(instance)], capture_output=True, text=True, check=False
        )
        output = (result.stdout + result.stderr).strip()
        check(result.returncode == 0 and not output, f"{where}: systemd-analyze verify: {output or result.returncode}")


def check_supervisor(pools: dict[str, dict[str, Any]], grace: float, scratch: Path) -> None:
    from supervisor.datatypes import RestartUnconditionally
    from supervisor.options import ServerOptions

    for conf in sorted((ROOT / "deploy/supervisor").glob("*.conf")):
        where = f"deploy/{conf.relative_to(ROOT / 'deploy')}"
        # supervisord checks that the user and the log directory exist: parse a copy with ones that do.
        copy = scratch / conf.name
        copy.write_text(
            re.sub(
                r"(?m)^stdout_logfile=/var/log/oxide/",
                f"stdout_logfile={scratch}/",
                re.sub(r"(?m)^user=.*$", f"user={getpass.getuser()}", conf.read_text(encoding="utf-8")),
            ),
            encoding="utf-8",
        )
        main = scratch / "supervisord.conf"
        main.write_text(
            f"[supervisord]\nlogfile={scratch}/supervisord.log\npidfile={scratch}/supervisord.pid\n"
            f"[include]\nfiles = {copy}\n",
            encoding="utf-8",
        )
        options = ServerOptions()
        options.configfile = str(main)
        try:
            options.process_config(do_usage=False)
        except ValueError as exc:
            check(False, f"{where}: supervisord rejects it: {exc}")
            continue
        programs: dict[str, list[Any]] = {}
        for group in options.process_group_configs:
            for process in group.process_configs:
                programs.setdefault(process.name.rsplit("-", 1)[0], []).append(process)
        for name, processes in programs.items():
            pool = name.removeprefix("oxide-queue-")
            first = processes[0]
            check(pool in pools, f"{where}: program {name}: no queue-{pool} service in deploy/compose.yaml")
            if pool in pools:
                check(
                    queues_of(shlex.split(first.command)) == pools[pool]["queues"],
                    f"{where}: {name} queues differ from queue-{pool}",
                )
                check(len(processes) == pools[pool]["replicas"], f"{where}: {name} numprocs differs from replicas")
            check(first.stopwaitsecs == grace, f"{where}: {name} stopwaitsecs must be {grace:g}")
            check_stop_timeout(shlex.split(first.command), grace, f"{where}: {name} command")
            check(first.stopsignal == 15, f"{where}: {name} stopsignal must be TERM")
            check(first.autorestart is RestartUnconditionally, f"{where}: {name} autorestart must be true")


# Lines of .ci/run that are shell structure or its own set-up, not commands a CI job could run.
SHELL_SYNTAX = re.compile(r"(set|cd|export|say|if|then|else|fi|for|while|until|do|done|\}|[\w-]+\(\))(\s|;|$)")
# .ci/run starts and waits for servers of its own; the workflow's are service containers with health checks.
LOCAL_SERVERS = re.compile(r"wait_for\s")
REDIS_VERSIONS = {"6.2", "7", "latest"}


def ci_run_commands(script: str) -> list[str]:
    """The command lines .ci/run runs at its top level, in order (not inside a function or an ``if``)."""
    commands = []
    for line in script.splitlines():
        if not line.strip() or line[0].isspace() or line.startswith("#"):
            continue
        if SHELL_SYNTAX.match(line) or LOCAL_SERVERS.match(line):
            continue
        commands.append(line.strip())
    return commands


def readme_test_command(readme: str) -> str | None:
    """The README's test command: its one line that makes the virtual environment and runs pytest."""
    found = [line.strip() for line in readme.splitlines() if " && " in line and " -m pytest" in line]
    return found[0] if len(found) == 1 else None


def same_command(line: str) -> str:
    """A command with the spelling .ci/run adds for a quiet log taken out (``python -m pip``, ``--quiet``)."""
    return re.sub(r"\.venv/bin/python -m pip ", ".venv/bin/pip ", line).replace(" --quiet", "")


def run_lines(job: dict[str, Any]) -> list[str]:
    return [line.strip() for step in job.get("steps", []) for line in step.get("run", "").splitlines() if line.strip()]


def matrix_values(matrix: dict[str, Any], key: str) -> set[str]:
    """Every value of ``key`` in a matrix, its ``include`` entries too."""
    values = {str(v) for v in matrix.get(key, [])}
    return values | {str(entry[key]) for entry in matrix.get("include", []) if key in entry}


def workflow_problems(workflow: dict[str, Any], ci_run: str, readme: str, pythons: list[str], where: str) -> list[str]:
    """Where the workflow runs something other than .ci/run's commands and the README's test command."""
    found: list[str] = []
    commands = ci_run_commands(ci_run)
    test_command = readme_test_command(readme)
    if test_command is None:
        found.append("README.md: expected one test command line, `python3 -m venv .venv && ... -m pytest`")
    else:
        spelled = {same_command(c) for c in commands}
        for part in test_command.split(" && "):
            if same_command(part) not in spelled:
                found.append(f".ci/run: does not run the README's `{part}`")
    allowed = set(commands) | ({test_command} if test_command else set())
    ran: set[str] = set()
    pytest_jobs = []
    for job_name, job in workflow.get("jobs", {}).items():
        lines = run_lines(job)
        ran.update(lines)
        for line in lines:
            if line not in allowed:
                found.append(
                    f"{where}: jobs.{job_name}: `{line}` is not a command of .ci/run nor the README's test command"
                )
        # In .ci/run's order: a job that builds the oracle after the tests, say, is not running .ci/run.
        order = [commands.index(line) for line in lines if line in commands]
        if order != sorted(order):
            found.append(f"{where}: jobs.{job_name}: runs .ci/run's commands in another order than .ci/run")
        if any(" -m pytest" in line for line in lines):
            pytest_jobs.append(job_name)
    for command in commands:
        if command not in ran:
            found.append(f"{where}: no job runs .ci/run's `{command}`")
    if not pytest_jobs:
        found.append(f"{where}: no job runs the README's tests")
    for job_name in pytest_jobs:
        matrix = workflow["jobs"][job_name].get("strategy", {}).get("matrix", {})
        if matrix.get("python") != pythons or matrix_values(matrix, "python") != set(pythons):
            found.append(f"{where}: jobs.{job_name}: the tests must run on noxfile's PYTHONS {pythons}")
        if missing := REDIS_VERSIONS - matrix_values(matrix, "redis"):
            found.append(f"{where}: jobs.{job_name}: the tests must also run against Redis {sorted(missing)}")
    return found


def check_workflow(paths: list[Path]) -> None:
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    pythons = next(
        ast.literal_eval(node.value)
        for node in ast.parse(noxfile).body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "PYTHONS" for t in node.targets)
    )
    ci_run = (ROOT / ".ci/run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    conftest = (ROOT / "tests/conftest.py").read_text(encoding="utf-8")
    defaults = dict(re.findall(r'os\.environ\.get\("(OXIDE_TEST_\w+_URL)", "([^"]+)"\)', conftest))
    check(len(defaults) == 3, f"tests/conftest.py: expected three OXIDE_TEST_*_URL defaults, found {defaults}")
    local = load_yaml(ROOT / "compose.yaml")["services"]
    local_images = {svc["image"] for svc in local.values()}
    local_repositories = {image.split(":")[0] for image in local_images}

    for path in paths:
        where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
        workflow = load_yaml(path)
        for name, value in defaults.items():
            check(workflow.get("env", {}).get(name) == value, f"{where}: env.{name} must be conftest's {value}")
        problems.extend(workflow_problems(workflow, ci_run, readme, pythons, where))
        for job_name, job in workflow["jobs"].items():
            for service in job.get("services", {}).values():
                image = service["image"]
                if "${{" not in image and image.split(":")[0] in local_repositories:
                    check(
                        image in local_images, f"{where}: jobs.{job_name}: {image} is not one of compose.yaml's images"
                    )


def check_docs(grace: float) -> None:
    doc = (ROOT / "docs/deployment.md").read_text(encoding="utf-8")
    files = [ROOT / "Dockerfile", ROOT / "compose.yaml", ROOT / ".ci/check-deploy"]
    files += sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file())
    for path in files:
        name = str(path.relative_to(ROOT))
        check(name in doc, f"docs/deployment.md does not mention {name}")
    check(f"{grace:g} s" in doc or f"{grace:g}s" in doc, f"docs/deployment.md does not explain the {grace:g} s grace")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, required=True, help="a directory for temporary copies")
    parser.add_argument(
        "--workflow", type=Path, action="append", help="check only this workflow file (against the repository's)"
    )
    args = parser.parse_args()
    if args.workflow:
        check_workflow([path.resolve() for path in args.workflow])
        for problem in problems:
            print(f"check-deploy: {problem}", file=sys.stderr)
        return 1 if problems else 0
    pools, grace = compose_pools()
    check_systemd(pools, grace, args.scratch)
    check_supervisor(pools, grace, args.scratch)
    check_workflow(sorted((ROOT / ".github/workflows").glob("*.yml")))
    check_docs(grace)
    for problem in problems:
        print(f"check-deploy: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {len(pools)} worker pools agree across compose, systemd and supervisor; grace {grace:g} s")
    print("ok: the workflow runs .ci/run's commands and the README's test command, nothing else, all of them")
    print("ok: on noxfile's Pythons, Redis 6.2, 7 and latest, conftest's URLs and compose.yaml's images")
    return 0


if __name__ == "__main__":
    sys.exit(main())

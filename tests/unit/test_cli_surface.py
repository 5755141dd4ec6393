"""The command line's surface, pinned: every command, option, default, metavar and help text.

``tests/data/cli-surface.json`` is what ``oxide`` offers its users. A change to a
name, a default or a help text fails here, so that it is made on purpose and the
JSON diff shows it in review. After such a change, rewrite the file with
``python -m tests.unit.test_cli_surface`` and read the diff.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from oxide.cli import build_parser

SURFACE = Path(__file__).resolve().parent.parent / "data" / "cli-surface.json"


def _name(value: Any) -> Any:
    return getattr(value, "__name__", value)


def surface(parser: argparse.ArgumentParser, help_line: str | None = None) -> dict[str, Any]:
    """One parser as plain data: what its --help shows and what it does with each argument."""
    described: dict[str, Any] = {
        "prog": parser.prog,
        "parser": type(parser).__name__,  # oxide's own: its errors are one line
        "help": help_line,
        "description": parser.description,
        "epilog": parser.epilog,
        "formatter": parser.formatter_class.__name__,
        "defaults": {key: _name(value) for key, value in sorted(parser._defaults.items())},
        "arguments": [],
        "commands": {},
    }
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            lines = {choice.dest: choice.help for choice in action._choices_actions}
            described["commands"] = {
                name: surface(sub, lines.get(name)) for name, sub in sorted(action.choices.items())
            }
            described["arguments"].append({"commands": action.dest, "metavar": action.metavar})
            continue
        described["arguments"].append(
            {
                "options": action.option_strings,
                "dest": action.dest,
                "action": type(action).__name__,
                "nargs": action.nargs,
                "metavar": action.metavar,
                "type": _name(action.type),
                "choices": list(action.choices) if action.choices is not None else None,
                "default": action.default,
                "help": action.help,
            }
        )
    return described


def test_the_command_line_offers_what_the_pinned_surface_says() -> None:
    assert surface(build_parser()) == json.loads(SURFACE.read_text(encoding="utf-8"))


def test_every_command_runs_a_handler_of_its_own() -> None:
    commands = surface(build_parser())["commands"]
    handlers = [command["defaults"]["handler"] for command in commands.values()]
    assert len(set(handlers)) == len(commands) == 16


if __name__ == "__main__":
    SURFACE.write_text(json.dumps(surface(build_parser()), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {SURFACE.relative_to(Path.cwd())}", file=sys.stderr)

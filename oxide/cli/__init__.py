"""The ``oxide`` command line: global options, the subcommands, errors and exit statuses.

Exit status: 0 success; 1 runtime failure (an unreachable server, an unknown
failed-job id); 2 usage or configuration error. Errors are one line on stderr;
``-v`` adds the traceback. Subcommand modules are light to import: each one
imports what it needs only when it runs, so ``oxide --help`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, OxideError, QueueNameError

if TYPE_CHECKING:
    from ..app import App
    from ..config import Config

__all__ = ["Context", "main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(OxideError):
    """Bad arguments found after parsing (exit status 2)."""


class RuntimeFailure(OxideError):
    """The command ran but could not do what was asked (exit status 1)."""


@dataclass
class Context:
    """What every subcommand may need, built lazily from the global options."""

    app_spec: str | None
    config_dir: str | None
    verbose: int
    quiet: bool = False
    _app: App | None = field(default=None, repr=False)
    _config: Config | None = field(default=None, repr=False)

    @property
    def app(self) -> App:
        """The application from ``--app``/``OXIDE_APP``, or a plain App reading the config directory."""
        if self._app is None:
            from ..app import App, load_app

            if self.app_spec:
                if os.getcwd() not in sys.path and "" not in sys.path:
                    sys.path.insert(0, os.getcwd())
                if self.config_dir is not None:
                    # An application usually builds App() when imported; App() reads this variable.
                    os.environ["OXIDE_CONFIG_DIR"] = self.config_dir
                self._app = load_app(self.app_spec)
                wanted = self.config_dir
                if wanted is not None and Path(wanted).resolve() != Path(self._app.config.config_dir).resolve():
                    raise UsageError(
                        f"--config {wanted}: the application {self.app_spec} reads its configuration from "
                        f"{self._app.config.config_dir} and cannot be pointed elsewhere; drop --config, or build "
                        "the App with App() so that it follows --config/OXIDE_CONFIG_DIR"
                    )
            else:
                self._app = App(self.config_dir)
        return self._app

    @property
    def config(self) -> Config:
        """The configuration: the app's own when ``--app`` is given, else read from the config directory."""
        if self._config is None:
            if self.app_spec or self._app is not None:
                self._config = self.app.config
            else:
                from ..config import load_config

                self._config = load_config(self.config_dir)
        return self._config


Handler = Callable[[Context, argparse.Namespace], int]

# Modules that add subcommands; each has register(subparsers). Kept as names so --help imports little.
COMMAND_MODULES = ("oxide.cli.work", "oxide.cli.failed", "oxide.cli.migrate", "oxide.cli.ops", "oxide.cli.serve")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, like every other error of the command line.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser: global options and every subcommand."""
    import importlib

    parser = _Parser(
        prog="oxide",
        description="Oxide queue: run workers and manage failed jobs.",
        epilog="Run 'oxide COMMAND --help' for the options of one command.",
    )
    parser.add_argument(
        "--app",
        metavar="MODULE:ATTR",
        default=None,
        help="the application whose listeners the worker runs (default: $OXIDE_APP)",
    )
    parser.add_argument(
        "--config", metavar="DIR", default=None, help="configuration directory (default: $OXIDE_CONFIG_DIR or ./config)"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging; tracebacks on errors")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="log warnings and errors only (no line per job done)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _setup_logging(verbose: int, quiet: bool = False) -> None:
    level = logging.WARNING if quiet and not verbose else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose, args.quiet)
    handler: Handler = args.handler
    ctx = Context(args.app, args.config, args.verbose, args.quiet)
    try:
        if ctx.app_spec is None:
            from ..config import environment

            ctx.app_spec = environment().get("OXIDE_APP") or None
        return handler(ctx, args)
    except (ConfigError, QueueNameError, UsageError) as exc:
        return _fail(ctx, exc, EXIT_USAGE)
    except OxideError as exc:
        return _fail(ctx, exc, EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130


def _fail(ctx: Context, exc: BaseException, status: int) -> int:
    if ctx.verbose:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"oxide: error: {exc}", file=sys.stderr)
    return status

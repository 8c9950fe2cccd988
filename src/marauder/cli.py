"""The `marauder` command: the only place that parses argv and exits.

Each subcommand lives in `marauder.commands.<module>` and provides `HELP`, `add_arguments(parser)`
and `run(args, ctx) -> int`. Command modules import heavy libraries (torch, ultralytics) inside
`run`, so `marauder --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

from .errors import MarauderError, extras_as_errors

# Stage order follows the training guide. name -> module under marauder.commands
COMMANDS: dict[str, str] = {
    "config": "config_cmd",
    "sample": "sample",
    "download": "download",
    "ingest": "ingest",
    "sync": "sync",
    "organize": "organize",
    "validate-data": "validate_data",
    "ssl-pretrain": "ssl_pretrain",
    "train-baseline": "train_baseline",
    "lr-find": "lr_find",
    "active-learn": "active_learn",
    "import-annotations": "import_annotations",
    "train-critical": "train_critical",
    "train-ensemble": "train_ensemble",
    "train-multiscale": "train_multiscale",
    "calibrate": "calibrate",
    "export": "export",
    "evaluate": "evaluate",
    "serve": "serve",
    "pipeline": "pipeline",
}

_OVERRIDE = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)+=")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marauder",
        description="Underwater imagery to deployment-ready species detectors.",
        epilog="Any command also takes config overrides as section.key=value, e.g. general.seed=1",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = command_module(name)
        add_command_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP), module)
    return parser


def command_module(name: str):
    return importlib.import_module(f"marauder.commands.{COMMANDS[name]}")


def add_command_arguments(parser: argparse.ArgumentParser, module) -> None:
    """What every command takes (--config, --workspace) and the command's own arguments."""
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML config (default: config/training_config.yaml in the workspace if present)")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="root folder for data/, checkpoints/, outputs/, logs/ (default: current dir)")
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)


def command_arguments(name: str, argv: list[str]) -> argparse.Namespace:
    """`argv` parsed by command `name`'s own parser, as `marauder <name> ...` would parse it."""
    module = command_module(name)
    parser = argparse.ArgumentParser(prog=f"marauder {name}")
    add_command_arguments(parser, module)
    return parser.parse_args(argv)


def run_command(args: argparse.Namespace, ctx) -> int:
    """Run a parsed command; a MarauderError is one line and its exit code, never a traceback."""
    from rich.markup import escape

    from .log import console

    try:
        with extras_as_errors():
            return int(args._run(args, ctx) or 0)
    except MarauderError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


def main(argv: list[str] | None = None) -> int:
    from .context import Context
    from .workspace import Workspace

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if _OVERRIDE.match(a)]
    unknown = [a for a in extra if not _OVERRIDE.match(a)]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return run_command(args, Context(Workspace.at(args.workspace), args.config, overrides))


def script_main(command: str) -> None:
    """Entry point for the guide's script paths (training/*.py, data/acquisition/*.py, ...)."""
    sys.exit(main([command, *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())

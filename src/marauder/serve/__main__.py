"""`python -m marauder.serve [--package P] [serve.key=value ...]`: `marauder serve` without the other
commands, for the container image (it has no torch, so it imports nothing else of the CLI)."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_OVERRIDE = re.compile(r"^serve\.[\w]+=")


def main(argv=None) -> int:
    from ..commands import serve as command
    from ..context import Context
    from ..errors import MarauderError, extras_as_errors
    from ..workspace import Workspace

    parser = argparse.ArgumentParser(prog="python -m marauder.serve", description=command.HELP)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--workspace", type=Path, default=None)
    command.add_arguments(parser)
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    bad = [a for a in extra if not _OVERRIDE.match(a)]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    ctx = Context(Workspace.at(args.workspace), args.config, extra)
    try:
        with extras_as_errors():
            return int(command.run(args, ctx) or 0)
    except MarauderError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

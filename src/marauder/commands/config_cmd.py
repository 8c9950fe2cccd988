"""`marauder config`: print the resolved config (or the defaults), or check a config file."""

from __future__ import annotations

HELP = "print the resolved config (defaults + file + overrides) as YAML"


def add_arguments(parser) -> None:
    parser.add_argument("--defaults", action="store_true", help="print the built-in defaults only")
    parser.add_argument("--check", action="store_true", help="only validate; print 'ok' on success")
    parser.add_argument("--reference", action="store_true",
                        help="print the Markdown config reference generated from the typed config")


def run(args, ctx) -> int:
    from ..config import MarauderConfig, dump_config

    if args.reference:
        from ..config.reference import render_reference

        print(render_reference(), end="")
        return 0

    cfg = MarauderConfig() if args.defaults else ctx.config
    print("ok" if args.check else dump_config(cfg), end="\n" if args.check else "")
    return 0

"""`speechcompress COMMAND`: the command line. One module per command: its arguments
(`add_arguments`) and a `run(args)` that calls the library; its docstring is its help line."""

from __future__ import annotations

import argparse
import sys

from speechcompress.cli import (
    baseline,
    benchmark,
    cluster,
    compare,
    corpus,
    enhance,
    evaluate,
    export,
    import_rnnoise,
    sensitivity,
    shrink,
    sync,
    vad,
)

COMMANDS = (enhance, vad, evaluate, shrink, cluster, sensitivity, export, import_rnnoise, benchmark, compare, corpus,
            baseline, sync)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechcompress", description="Use, ship and study trained models, fetch "
                                     "real recordings, and score the shipped models we compare with.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        name = command.__name__.rsplit(".", 1)[-1].replace("_", "-")
        sub = commands.add_parser(name, help=command.__doc__.splitlines()[0])
        command.add_arguments(sub)
        sub.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        print(f"speechcompress {args.command}: error: {error}", file=sys.stderr)
        return 2

"""The command-line reference page, docs/cli.md: every command's `--help` as argparse prints it.

    .venv/bin/python -m speechcompress.cli.reference > docs/cli.md

A test rebuilds it and compares, so the page is always what the commands say."""

from __future__ import annotations

import argparse
import os

WIDTH = "100"  # argparse wraps to $COLUMNS: the page must not depend on the terminal that wrote it


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def markdown() -> str:
    """The page, command by command (and a command's own subcommands, such as `corpus fetch`)."""
    from speechcompress.cli import build_parser

    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = build_parser()
        parts = ["# Command-line reference", "",
                 "`speechcompress COMMAND --help` prints each of these; this page is generated from the same",
                 "parser (`python -m speechcompress.cli.reference > docs/cli.md`).", "",
                 "```text", parser.format_help().rstrip(), "```"]
        for name, command in _subcommands(parser).items():
            parts += ["", f"## {name}", "", "```text", command.format_help().rstrip(), "```"]
            for sub_name, sub in _subcommands(command).items():
                parts += ["", f"### {name} {sub_name}", "", "```text", sub.format_help().rstrip(), "```"]
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")

"""The README and docs/ say only what is true: their links lead somewhere, the commands they show
parse (the CLI's flags, train.py's recipes and keys), the files they name exist, and the command
reference is what the parser prints."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from speechcompress.cli import build_parser
from speechcompress.cli.reference import markdown
from speechcompress.config import PROJECT_ROOT

from .conftest import compose_config

PAGES = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
TOP_LEVEL = {"conf", "src", "docs", "benchmarks", "tests", "experiments", "data", "models", "features", "tasks",
             "evaluation", "compression", "export", "stages", "tracking", "cli"}  # where a named path may start
PLACEHOLDER = re.compile(r"(?<![A-Za-z])(NAME|RUN|RUN_ID|RUN_NAME|VAD_RUN|CKPT|VAD_CKPT|ID|TIME|ROOT|OUT|DIR|KEY|"
                         r"SWEEP|N|JOBID|FOLDER|PATH|SMALL|MODEL)(?![A-Za-z])|<|\*|\.\.\.")  # what a user fills in


def _text(page: Path) -> str:
    return page.read_text()


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _text(page).splitlines() if line.startswith("#")}


def _code_lines(page: Path) -> list[str]:
    """The lines of the page's fenced code blocks, continuation lines joined."""
    lines, inside, joined = [], False, ""
    for line in _text(page).splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            joined += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
            if not line.rstrip().endswith("\\"):
                lines.append(joined)
                joined = ""
    return lines


def _tracked() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    return set(files) | {str(folder) for f in files for folder in Path(f).parents if str(folder) != "."}


def test_the_readme_is_a_short_read():
    assert len(_text(PROJECT_ROOT / "README.md").splitlines()) <= 300


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_link_leads_to_a_file_and_heading_that_exist(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", _text(page)):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        assert destination.exists(), f"{page.name}: link to {target}, which does not exist"
        if anchor and destination.suffix == ".md":
            assert anchor in _anchors(destination), f"{page.name}: no heading #{anchor} in {path or page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_speechcompress_command_parses(page):
    parser = build_parser()
    for line in _code_lines(page):
        words = shlex.split(line.split("#")[0]) if "speechcompress " in line else []
        if not words or not words[0].endswith("bin/speechcompress"):
            continue
        if any(mark in line.split("#")[0] for mark in ("[", "|")):  # a synopsis: its command must exist
            assert words[1] in _commands(parser), f"{page.name}: no command {words[1]!r}"
            continue
        parser.parse_args(words[1:])  # exits (failing the test) on a flag or command that does not exist


def _commands(parser) -> set[str]:
    import argparse

    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(action.choices)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_train_command_names_a_recipe_and_keys_that_compose(page):
    for line in _code_lines(page):
        command = line.split("#")[0]
        if "train.py" not in command or "+experiment=" not in command:
            continue
        words = shlex.split(command)
        overrides = [w for w in words[words.index(next(w for w in words if w.endswith("train.py"))) + 1:]
                     if "=" in w and not w.startswith(("hydra", "-")) and "," not in w
                     and not PLACEHOLDER.search(w.split("=", 1)[1]) and "RUN_ID" not in w and "CKPT" not in w]
        compose_config(overrides)  # an unknown recipe, group or key fails here


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_file_named_in_backticks_exists(page):
    """A path (`models/rnnoise.py`, `conf/experiment/`) is in the repository, from its root or from
    the package's; a bare source file (`sparsify.py`) is somewhere in it. A path that git ignores is
    a run's output, and names of other kinds (`funasr/`, `size_per_tensor.csv`) are what runs write."""
    tracked = _tracked()
    basenames = {Path(f).name for f in tracked}
    for name in re.findall(r"`([\w./-]+\.(?:py|sh|yaml|md|txt|png)|[\w./-]+/)`", _text(page)):
        clean = name.rstrip("/")
        if PLACEHOLDER.search(name):
            continue
        if "/" not in clean:
            assert not clean.endswith((".py", ".sh")) or clean in basenames, f"{page.name} names `{name}`"
            continue
        if clean.split("/")[0] not in TOP_LEVEL:
            continue
        if any(c in tracked for c in (clean, f"src/speechcompress/{clean}")):
            continue
        ignored = subprocess.run(["git", "check-ignore", "-q", clean], cwd=PROJECT_ROOT).returncode == 0
        assert ignored, f"{page.name} names `{name}`, which is neither in the repository nor a run output"


def test_the_cli_reference_is_what_the_parser_prints():
    assert (PROJECT_ROOT / "docs" / "cli.md").read_text() == markdown(), \
        "docs/cli.md is stale: .venv/bin/python -m speechcompress.cli.reference > docs/cli.md"

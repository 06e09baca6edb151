"""the real-recordings corpus (Debian packages: voices and noise): fetch it, report on it, measure it"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from speechcompress.config import PROJECT_ROOT


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["fetch", "report", "measure"],
                   help="fetch: download, decode and describe it once; report: per source, minutes, cleanliness, "
                        "the share of frames labelled speech and the minutes each gate keeps, with a PNG sheet of "
                        "spectrograms; measure: DeepFilterNet3's cleanliness of every speech clip into the "
                        "committed table (about 40 min on one core; for a new package version)")
    p.add_argument("--root", default=str(PROJECT_ROOT / "data" / "real"),
                   help="where it goes (default: the project's data/real, the configs' data.real.root)")
    p.add_argument("--corpus", type=Path, default=None,
                   help="report: a folder of speech files (a source per subfolder) instead of the fetched corpus")
    p.add_argument("--clips", type=int, default=40,
                   help="report: clips per source to measure (a folder corpus) and to count labels on (default 40)")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "experiments" / "corpus_report",
                   help="report: the folder for report.md and sheet.png (default experiments/corpus_report)")


def _fetch(root: Path) -> int:
    from speechcompress.data.debian import PackagesUnavailable
    from speechcompress.data.real import corpus_folder, fetch_corpus, read_manifest

    if (corpus_folder(root) / "manifest.csv").exists():
        read_manifest(root)  # adds the cleanliness figures to a manifest fetched before they existed
        print(f"real-recordings corpus ready: {corpus_folder(root)}", file=sys.stderr)
        return 0
    started = time.perf_counter()
    try:
        manifest = fetch_corpus(root)
    except PackagesUnavailable as error:
        print(f"speechcompress corpus: {error}; training uses espeak-ng speech and procedural noise alone",
              file=sys.stderr)
        return 1
    clips = read_manifest(root)
    minutes = {kind: sum(c.seconds for c in clips if c.kind == kind) / 60 for kind in ("speech", "noise")}
    size = sum(f.stat().st_size for f in manifest.parent.rglob("*") if f.is_file())
    print(f"wrote {manifest}: {len(clips)} clips, {minutes['speech']:.0f} min of speech by "
          f"{len({c.speaker for c in clips if c.kind == 'speech'})} voices, {minutes['noise']:.0f} min of noise; "
          f"{size / 1e6:.0f} MB, in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from speechcompress.data.corpus_report import fetched_sources, folder_sources, write_report

    if args.clips < 1:
        raise SystemExit("speechcompress corpus report: --clips must be 1 or more")
    sources = folder_sources(args.corpus, args.clips) if args.corpus else fetched_sources(args.root)
    print(write_report(sources, args.out, args.clips, str(args.corpus or args.root)))
    print(f"wrote {args.out / 'report.md'} and {args.out / 'sheet.png'}", file=sys.stderr)
    return 0


def _measure(root: Path) -> int:
    import json

    from speechcompress.data.cleanliness import TABLE, write_table
    from speechcompress.data.real import corpus_folder, measure_clips, read_manifest

    folder = corpus_folder(root)
    clips = [c for c in read_manifest(root) if c.kind == "speech"]
    versions = json.loads((folder / "packages.json").read_text())
    figures = measure_clips(folder, clips)
    write_table({(c.package, versions[c.package], c.file): figures[c.file] for c in clips})
    print(f"wrote {TABLE}: {len(clips)} clips", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    """`corpus fetch | report | measure` (data/README.md)."""
    if args.action == "fetch":
        return _fetch(Path(args.root))
    if args.action == "report":
        return _report(args)
    return _measure(Path(args.root))

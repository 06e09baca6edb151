"""fetch the real-recordings corpus (Debian packages: voices and noise)"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from speechcompress.config import PROJECT_ROOT


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["fetch"], help="fetch: download, decode and describe it once")
    p.add_argument("--root", default=str(PROJECT_ROOT / "data" / "real"),
                   help="where it goes (default: the project's data/real, the configs' data.real.root)")


def run(args: argparse.Namespace) -> int:
    """`corpus fetch`: the real-recordings corpus from Debian packages, once (data/README.md)."""
    from speechcompress.data.debian import PackagesUnavailable
    from speechcompress.data.real import corpus_folder, fetch_corpus, read_manifest

    root = Path(args.root)
    if (corpus_folder(root) / "manifest.csv").exists():
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

"""What data a run saw, as MLflow dataset inputs can record it: each split's sources (the cache files
or folders its clips came from, `dataset.sources`), with a digest that changes when they do.

A file's digest is the SHA-256 of its bytes (computed once and kept beside it as FILE.sha256, as
caches never change once written); a folder's is the SHA-256 of its audio files' relative paths and
sizes (hashing a real corpus's bytes would cost minutes per run), with the file count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from speechcompress.atomic_files import atomic_path
from speechcompress.data.audio import list_audio

CHUNK = 1 << 22


@dataclass(frozen=True)
class Source:
    name: str  # the file's or folder's name
    uri: str  # file:// URI of the file or folder
    digest: str  # SHA-256, hex (see the module's docstring)
    files: int  # audio files (a folder), or 1 (a cache file)
    bytes: int


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes, kept in PATH.sha256 (recomputed when the file is newer or resized)."""
    memo = path.with_name(path.name + ".sha256")
    stat = path.stat()
    if memo.is_file() and memo.stat().st_mtime_ns >= stat.st_mtime_ns:
        digest, _, size = memo.read_text().partition(" ")
        if size.strip() == str(stat.st_size):
            return digest
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            sha.update(block)
    try:
        with atomic_path(memo) as partial:
            partial.write_text(f"{sha.hexdigest()} {stat.st_size}\n")
    except OSError:  # a read-only corpus: the digest is still right, just not kept
        pass
    return sha.hexdigest()


def describe(path: Path) -> Source:
    """A cache file or a corpus folder as a lineage `Source`."""
    path = Path(path).resolve()
    if path.is_dir():
        files = list_audio(path)
        sizes = [f.stat().st_size for f in files]
        listing = "\n".join(f"{f.relative_to(path).as_posix()} {s}" for f, s in zip(files, sizes, strict=True))
        return Source(path.name, path.as_uri(), hashlib.sha256(listing.encode()).hexdigest(), len(files), sum(sizes))
    return Source(path.name, path.as_uri(), file_digest(path), 1, path.stat().st_size)


def split_sources(dataset) -> list[Source]:
    """The lineage of one split's dataset (none for a dataset that names no `sources`)."""
    return [describe(path) for path in getattr(dataset, "sources", []) if path is not None]

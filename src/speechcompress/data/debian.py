"""Debian packages as data: `apt-get download` one package and unpack it with `dpkg-deb -x`.

Neither needs root, and nothing is installed. A machine without apt, or one whose package lists
cannot be read or reached, raises `PackagesUnavailable` with one line that says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class PackagesUnavailable(RuntimeError):
    """Debian packages cannot be had on this machine (no apt, no package lists, no mirror)."""


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def download_package(name: str, folder: Path, into: Path | None = None) -> Path:
    """Unpack Debian package `name` into `folder / name`, or into `into` (its files under their
    installed paths); returns that folder. The .deb is deleted once unpacked."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise PackagesUnavailable(f"{tool} not found: this machine cannot fetch Debian packages")
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    done = _run(["apt-get", "download", name], folder)
    if done.returncode != 0 and "Unable to locate" in done.stderr and os.geteuid() == 0:
        _run(["apt-get", "update", "-qq"], folder)  # a fresh machine's package lists may be empty
        done = _run(["apt-get", "download", name], folder)
    if done.returncode != 0:
        hint = " (run `apt-get update` as root first)" if "Unable to locate" in done.stderr else ""
        raise PackagesUnavailable(f"apt-get download {name} failed: {_last_line(done.stderr)}{hint}")
    debs = sorted(folder.glob(f"{name}_*.deb"))
    if not debs:
        raise PackagesUnavailable(f"apt-get download {name} left no {name}_*.deb in {folder}")
    target = into or folder / name
    unpacked = _run(["dpkg-deb", "-x", str(debs[-1]), str(target)], folder)
    if unpacked.returncode != 0:
        raise PackagesUnavailable(f"dpkg-deb -x {debs[-1].name} failed: {_last_line(unpacked.stderr)}")
    for deb in debs:
        deb.unlink()
    return target


def package_version(unpacked: Path, name: str) -> str:
    """The version of an unpacked package, from its changelog's first line ('unknown' without one)."""
    import gzip

    for changelog in sorted((unpacked / "usr/share/doc" / name).glob("changelog*.gz")):
        with gzip.open(changelog, "rt", errors="replace") as handle:
            first = handle.readline()
        if "(" in first and ")" in first:
            return first[first.index("(") + 1 : first.index(")")]
    return "unknown"

"""The process that builds one synthetic cache (`python -m speechcompress.data.cache_worker PARENT_PID`,
started by `synthetic.load_synthetic_split`). It reads its request from stdin and dies with its
parent, so a killed run leaves nothing synthesising."""

from __future__ import annotations

import ctypes
import os
import pickle
import sys
from signal import SIGKILL

_PR_SET_PDEATHSIG = 1  # Linux prctl option: the signal this process gets when its parent dies


def main(parent: int) -> None:
    if sys.platform == "linux":  # first, before seconds of imports a kill could fall into
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, SIGKILL)
    if os.getppid() != parent:  # the parent was gone before that took hold
        sys.exit(1)
    from speechcompress.data.synthetic import _generate

    _generate(*pickle.load(sys.stdin.buffer))


if __name__ == "__main__":
    main(int(sys.argv[1]))

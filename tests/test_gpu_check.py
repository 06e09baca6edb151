"""benchmarks/gpu_check.sh, the check a GPU machine runs once it is lent, run end to end on the CPU
with tiny sizes: every check it prints is a real run or a real measurement."""

import math
import re
import subprocess

import pytest

from speechcompress.config import PROJECT_ROOT


@pytest.mark.slow
def test_the_gpu_check_runs_every_check_on_the_cpu_with_tiny_sizes(tmp_path):
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--tiny", "--out", str(tmp_path)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    rows = re.findall(r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", (tmp_path / "gpu_check.md").read_text(), re.M)
    figures = {(check, name): float(value) for check, name, value in rows[1:]}  # after the header
    for check in ("frcrn fp32", "frcrn 16-mixed", "frcrn_small 200 steps", "frcrn_small DDP"):
        # the Throughput callback's figures, read from the run's MLflow store
        assert figures[(check, "steps/s")] > 0 and figures[(check, "audio s/s")] > 0
        assert figures[(check, "wall seconds")] > 0
    assert all(math.isfinite(value) and value > 0 for value in figures.values())
    assert {name for check, name in figures if check == "FRCRN inference"} == {"RTF fp32", "RTF fp16, 8 windows a pass"}
    assert {name for check, name in figures if check == "rnnoise_xiph48k"} == {"front-end audio s/s", "network audio s/s"}

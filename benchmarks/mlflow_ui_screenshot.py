"""A screenshot of MLflow's UI on an experiment, as a user opens it: headless Chromium from Debian
(`chromium-headless-shell`, fetched once with `apt-get download` into data/tools/chromium, no root)
against `mlflow server` on the store. Also writes the page's rendered text (NAME.txt), which is
what a test reads to check the view holds the sweep's runs.

    python benchmarks/mlflow_ui_screenshot.py --experiment rnnoise_density_sweep_seeds
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from speechcompress.config import PROJECT_ROOT, tracking_uri
from speechcompress.data.debian import download_package
from speechcompress.tracking.ui import experiment_url

# chromium-headless-shell and the libraries of its dependencies that a slim Debian 12 lacks
PACKAGES = ("chromium-headless-shell", "chromium-common", "libopenh264-7", "libdouble-conversion3", "libopus0",
            "libharfbuzz-subset0", "libxnvctrl0", "libpulse0", "libflac12", "libminizip1", "libopenjp2-7", "libogg0",
            "libsndfile1", "libasyncns0", "libvorbis0a", "libvorbisenc2", "libmpg123-0", "libmp3lame0")
BROWSER = Path("usr/lib/chromium/chromium-headless-shell")


def browser(folder: Path) -> tuple[Path, dict[str, str]]:
    """The headless shell (fetched into `folder` the first time) and the environment it runs in."""
    if not (folder / BROWSER).is_file():
        for name in PACKAGES:
            print(f"fetching {name} (once, into {folder})", file=sys.stderr)
            download_package(name, folder / "debs", into=folder)
    libraries = [str(folder / "usr/lib/x86_64-linux-gnu"), str(folder / "usr/lib/x86_64-linux-gnu/pulseaudio")]
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join([*libraries, os.environ.get("LD_LIBRARY_PATH", "")])}
    missing = subprocess.run(["ldd", str(folder / BROWSER)], capture_output=True, text=True, env=env).stdout
    absent = re.findall(r"(\S+) => not found", missing)
    if absent:
        raise RuntimeError(f"{folder / BROWSER} lacks {', '.join(absent)}: add the Debian packages that ship them "
                           f"to PACKAGES in {__file__}")
    return folder / BROWSER, env


def serve(store: str, port: int) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on the store, once its UI answers."""
    import urllib.request

    process = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
                                "--port", str(port), "--workers", "1", "--backend-store-uri", store],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return process, uri
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"mlflow server on {store} did not start")


def capture(shell: Path, env: dict[str, str], url: str, png: Path, seconds: float = 20.0) -> str:
    """Screenshot of `url` once its scripts ran for `seconds` (virtual time); returns the page's text."""
    common = [str(shell), "--no-sandbox", "--hide-scrollbars", "--window-size=1600,1000",
              f"--virtual-time-budget={int(seconds * 1000)}"]
    subprocess.run([*common, f"--screenshot={png}", url], capture_output=True, env=env, check=True, timeout=300)
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, env=env, check=True,
                         timeout=300).stdout
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def main(argv: list[str] | None = None) -> int:
    import socket

    from mlflow.tracking import MlflowClient

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", required=True)
    p.add_argument("--tracking-uri", help="a sqlite:/// store (default: experiments/mlflow.db)")
    p.add_argument("--out", help="the PNG (default: experiments/reports/mlflow_ui_EXPERIMENT.png)")
    p.add_argument("--browser-dir", default=str(PROJECT_ROOT / "data" / "tools" / "chromium"))
    args = p.parse_args(argv)
    store = tracking_uri(args.tracking_uri)
    found = MlflowClient(store).get_experiment_by_name(args.experiment)
    if found is None:
        raise SystemExit(f"no experiment {args.experiment!r} in {store}")
    png = Path(args.out or PROJECT_ROOT / "experiments" / "reports" / f"mlflow_ui_{args.experiment}.png")
    png.parent.mkdir(parents=True, exist_ok=True)
    shell, env = browser(Path(args.browser_dir))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server, uri = serve(store, port)
    try:
        text = capture(shell, env, experiment_url(uri, found.experiment_id), png)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    png.with_suffix(".txt").write_text(text + "\n")
    print(f"wrote {png} ({png.stat().st_size:,} bytes) and {png.with_suffix('.txt').name}: {text[:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

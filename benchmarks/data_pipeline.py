"""Does the synthetic data keep up with training? Audio produced per second against audio trained on.

    .venv/bin/python benchmarks/data_pipeline.py [--experiments rnnoise fsmn_vad] [--items 256] [--steps 10]
        [KEY=VALUE ...]   (config overrides, as for train.py)

For each recipe, with its real config:
1. the corpus cache: seconds of audio (speech, talkers, noise) synthesised per second of wall time,
   when the cache had to be made (it is made once; later runs read it);
2. mixing: `--items` training items drawn as training draws them (crop, room, device, SNR, level),
   in seconds of audio per second;
3. training: `--steps` optimizer steps of the recipe's model on the recipe's batches (made
   beforehand, so data time is not counted), in seconds of audio per second;
and the ratio of 2 to 3, which should be at least 10: the data then costs a training run under a
tenth of its time. All in one process, one after the other, on the threads torch is given.
The figures are printed and logged to an MLflow run `data_pipeline` of the experiment `benchmarks`
in the configured tracking store (`bench/synthesis_x_realtime`, `bench/mixing_x_realtime`,
`bench/training_x_realtime`, `bench/data_to_training`, each with the recipe's name in front).
"""

from __future__ import annotations

import argparse
import time

import mlflow
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from speechcompress.config import CONFIG_DIR, register_resolvers, tracking_uri
from speechcompress.data.mixing import pad_collate
from speechcompress.tasks.base import build_task


def _audio_seconds(dataset, sample_rate: int) -> float:
    speech = sum(len(clip) for clip in dataset.speech) + sum(len(clip) for clip in dataset.noise)
    return speech / sample_rate


def measure(experiment: str, items: int, steps: int, overrides: list[str]) -> dict[str, float]:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"+experiment={experiment}", *overrides])
    datamodule = instantiate(cfg.data)
    rate = cfg.model.sample_rate
    figures: dict[str, float] = {}

    start = time.perf_counter()
    train = datamodule.dataset("train")  # generates the cache if it is missing
    made = time.perf_counter() - start
    if made > 5.0:  # a cache read takes well under a second: this one was synthesised
        figures["synthesis_x_realtime"] = _audio_seconds(train, rate) / made

    for i in range(8):  # warm up: each room's spectra are computed on first use
        train[i]
    start = time.perf_counter()
    drawn = [train[i] for i in range(items)]
    mixing = time.perf_counter() - start
    figures["mixing_x_realtime"] = sum(len(item["noisy"]) for item in drawn) / rate / mixing

    task = build_task(cfg)
    batch_size = cfg.data.batch_size
    batches = [pad_collate([train[(k * batch_size + i) % len(train)] for i in range(batch_size)])
               for k in range(steps + 1)]
    cmvn = getattr(task.model, "cmvn", None)
    if cmvn is not None:
        cmvn.fit(torch.cat([task.model.fbank(b["noisy"])[0] for b in batches[:1]]))
    optimizer = task.configure_optimizers()["optimizer"]
    task.train()

    def step(batch):
        optimizer.zero_grad()
        task.loss(task.model, batch).backward()
        optimizer.step()

    step(batches[0])  # warm up
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    training = time.perf_counter() - start
    figures["training_x_realtime"] = steps * batch_size * batches[1]["noisy"].shape[-1] / rate / training
    figures["data_to_training"] = figures["mixing_x_realtime"] / figures["training_x_realtime"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["rnnoise", "fsmn_vad"])
    parser.add_argument("--items", type=int, default=256, help="training items drawn for the mixing rate")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps timed for the training rate")
    parser.add_argument("overrides", nargs="*", help="config overrides, KEY=VALUE")
    args = parser.parse_args()
    register_resolvers()
    logged: dict[str, float] = {}
    for experiment in args.experiments:
        figures = measure(experiment, args.items, args.steps, args.overrides)
        print(f"\n{experiment} (torch threads: {torch.get_num_threads()})")
        if "synthesis_x_realtime" in figures:
            print(f"  corpus synthesis  {figures['synthesis_x_realtime']:8.1f} × real time (once, then cached)")
        print(f"  mixing            {figures['mixing_x_realtime']:8.1f} × real time")
        print(f"  training          {figures['training_x_realtime']:8.1f} × real time")
        print(f"  data / training   {figures['data_to_training']:8.1f} ×  (target: at least 10)")
        logged |= {f"bench/{experiment}/{name}": value for name, value in figures.items()}
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=args.overrides)
    mlflow.set_tracking_uri(tracking_uri(cfg.logger.tracking_uri))
    mlflow.set_experiment("benchmarks")
    with mlflow.start_run(run_name="data_pipeline"):
        mlflow.log_metrics(logged)


if __name__ == "__main__":
    main()

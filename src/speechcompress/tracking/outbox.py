"""A run's writes to MLflow that never hold training up, and survive the tracking server being away.

`Outbox` stands in for the run's `MlflowClient`: each write (metrics, params, tags, artifacts,
dataset inputs, the run's end) is first appended to a journal beside the run's checkpoints
(RUN/mlflow_outbox.jsonl), then delivered in order by one background thread; reads pass straight
through. When the server does not answer, the thread says so once on stderr and tries the same
write again with a growing pause (1 s up to 30 s) until it does; training goes on meanwhile, and
a signal is handled at the next step as always. Every write is idempotent in MLflow (a metric sent
twice is stored once), so a write resent after a crash is no duplicate.

At the end the run waits a bounded time for the journal to drain; what is still undelivered stays
in the journal, and `speechcompress sync RUN` sends it later (a resumed run sends it first).
"""

from __future__ import annotations

import base64
import json
import queue
import re
import sys
import threading
import time
from functools import partial
from pathlib import Path

from mlflow.entities import DatasetInput, Metric, Param, RunTag

from speechcompress.atomic_files import atomic_path

WRITES = ("log_batch", "log_metric", "log_param", "set_tag", "set_terminated", "log_artifact", "log_artifacts",
          "log_inputs")
PAUSES = (1.0, 30.0)  # the first pause before trying a write again, and the longest
# how MLflow's client words a server that did not answer (transport errors, a gateway's 502-504)
TRANSIENT = re.compile(r"failed with exception|Max retries exceeded|Connection (refused|aborted|reset)|timed out"
                       r"|(error|status) code:? ?50[234]\b|\b50[234] Server Error|TEMPORARILY_UNAVAILABLE")


def _encode(value):
    """JSON for a write's arguments: the MLflow entities they carry, paths, and plain values."""
    if isinstance(value, Metric):
        return {"__metric__": [value.key, value.value, value.timestamp, value.step]}
    if isinstance(value, Param | RunTag):
        return {"__param__" if isinstance(value, Param) else "__tag__": [value.key, value.value]}
    if isinstance(value, DatasetInput):
        return {"__dataset_input__": base64.b64encode(value.to_proto().SerializeToString()).decode()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__metric__" in value:
        return Metric(*value["__metric__"])
    if "__param__" in value or "__tag__" in value:
        return (Param if "__param__" in value else RunTag)(*value.get("__param__", value.get("__tag__")))
    if "__dataset_input__" in value:
        from mlflow.protos.service_pb2 import DatasetInput as Proto

        return DatasetInput.from_proto(Proto.FromString(base64.b64decode(value["__dataset_input__"])))
    return {k: _decode(v) for k, v in value.items()}


def unreachable(error: BaseException) -> bool:
    """Whether a failed write failed because the server did not answer (worth trying again), not
    because it refused the write."""
    import requests

    if isinstance(error, requests.exceptions.RequestException | ConnectionError | TimeoutError):
        return True
    return TRANSIENT.search(str(error)) is not None


def delivered_path(journal: Path) -> Path:
    return Path(journal).with_suffix(".delivered")


def delivered(journal: Path) -> int:
    """How many of the journal's writes the server has (the journal's first ones)."""
    path = delivered_path(journal)
    return int(path.read_text()) if path.is_file() else 0


def pending(journal: Path) -> list[dict]:
    """The journal's writes not yet delivered, in order."""
    if not Path(journal).is_file():
        return []
    lines = [line for line in Path(journal).read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines[delivered(journal):]]


class Outbox:
    """An `MlflowClient` whose writes wait in a journal and are delivered by a thread (see the module)."""

    def __init__(self, client, journal: Path, tracking_uri: str) -> None:
        self.client, self.journal, self.tracking_uri = client, Path(journal), tracking_uri
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._away = False
        self._closing_at: float | None = None
        self._left: int | None = None  # once closed: the writes it could not deliver
        waiting = pending(self.journal)
        self._delivered = delivered(self.journal)  # kept in memory, and in the journal's .delivered file
        self._written = self._delivered + len(waiting)
        for entry in waiting:  # a resumed run's undelivered writes go first
            self._queue.put(entry)
        self._worker = threading.Thread(target=self._deliver, daemon=True, name="mlflow-outbox")
        self._worker.start()

    def __getattr__(self, name: str):
        if name in WRITES:
            return partial(self._put, name)
        return getattr(self.client, name)

    def _put(self, op: str, *args, **kwargs) -> None:
        kwargs.pop("synchronous", None)  # Lightning's hint for MLflow's own async logging: this is ours
        entry = {"op": op, "args": _encode(list(args)), "kwargs": _encode(kwargs), "uri": self.tracking_uri}
        with self._lock:  # the journal's order is the delivery order, whichever thread writes
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            with self.journal.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")
            self._written += 1
            self._queue.put(entry)

    def _deliver(self) -> None:
        while (entry := self._queue.get()) is not None:
            if not self._send(entry):
                return  # closing, and the server is still away: the journal keeps the rest
            with self._lock:
                self._delivered += 1
                with atomic_path(delivered_path(self.journal)) as partial_path:
                    partial_path.write_text(str(self._delivered))

    def _send(self, entry: dict) -> bool:
        """Delivers one write, trying again while the server is away; False when closing ran out of time."""
        pause = PAUSES[0]
        while True:
            try:
                getattr(self.client, entry["op"])(*_decode(entry["args"]), **_decode(entry["kwargs"]))
            except Exception as error:
                if not unreachable(error):  # refused: trying again would not help, and must not block the rest
                    print(f"[speechcompress] MLflow refused {entry['op']} ({error}); left out", file=sys.stderr)
                    return True
                if not self._away:
                    self._away = True
                    print(f"[speechcompress] the MLflow server {self.tracking_uri} does not answer; training goes "
                          f"on, and its figures wait in {self.journal} until the server is back", file=sys.stderr)
                if self._closing_at is not None and time.monotonic() + pause > self._closing_at:
                    return False
                time.sleep(pause)
                pause = min(2 * pause, PAUSES[1])
                continue
            if self._away:
                self._away = False
                print(f"[speechcompress] the MLflow server {self.tracking_uri} is back; delivering what waited",
                      file=sys.stderr)
            return True

    def close(self, wait: float) -> int:
        """Waits up to `wait` seconds for every write to be delivered; removes the journal when all
        were, and returns how many were not."""
        if self._left is not None:
            return self._left
        self._closing_at = time.monotonic() + wait
        self._queue.put(None)
        self._worker.join(timeout=wait + 1.0)
        with self._lock:
            undelivered = self._written - self._delivered
            if undelivered == 0:
                self.journal.unlink(missing_ok=True)
                delivered_path(self.journal).unlink(missing_ok=True)
        self._left = undelivered
        return undelivered


def sync(journal: Path, client=None, wait: float = 600.0) -> tuple[int, int]:
    """Sends a journal's undelivered writes (to the tracking URI they were meant for, unless `client`
    is given); returns (sent, still undelivered)."""
    from mlflow.tracking import MlflowClient

    waiting = pending(journal)
    if not waiting:  # nothing left (or no journal): tidy up
        Path(journal).unlink(missing_ok=True)
        delivered_path(journal).unlink(missing_ok=True)
        return 0, 0
    left = Outbox(client or MlflowClient(waiting[0]["uri"]), journal, waiting[0]["uri"]).close(wait)
    return len(waiting) - left, left

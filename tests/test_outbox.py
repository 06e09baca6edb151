"""The outbox: writes journalled while the server is away are kept in order, and `sync` delivers them
to a real store (the full outage, with a real server stopped and started, is in test_tracking_server)."""

from __future__ import annotations

import json

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from speechcompress.tracking.outbox import Outbox, pending, sync

from .conftest import free_port, migrated_store


def test_writes_made_while_the_server_is_away_wait_in_the_journal_and_sync_delivers_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    store = tmp_path / "mlflow.db"
    store.write_bytes(migrated_store().read_bytes())
    local = MlflowClient(f"sqlite:///{store}")
    run = local.create_run(local.create_experiment("outbox", (tmp_path / "artifacts").as_uri())).info.run_id
    (tmp_path / "report.txt").write_text("figures")
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    journal = tmp_path / "run" / "mlflow_outbox.jsonl"
    outbox = Outbox(MlflowClient(away), journal, away)
    for step in range(5):
        outbox.log_batch(run, metrics=[Metric("train/loss", 1.0 / (step + 1), 1000 + step, step)])
    outbox.log_batch(run, params=[Param("model.gru_size", "32")], tags=[RunTag("speechcompress.shipped", "onnx")])
    dataset = Dataset("train.npz", "abc123", "local", json.dumps({"uri": "file:///data/train.npz"}))
    outbox.log_inputs(run, datasets=[DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])
    outbox.log_artifact(run, str(tmp_path / "report.txt"), "reports")
    outbox.set_terminated(run, "FINISHED")
    assert outbox.close(wait=0.5) == 9 and len(pending(journal)) == 9  # kept, in order
    assert [e["op"] for e in pending(journal)][-3:] == ["log_inputs", "log_artifact", "set_terminated"]

    assert sync(journal, client=local) == (9, 0)
    assert not journal.exists()
    got = local.get_run(run)
    history = local.get_metric_history(run, "train/loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4] and history[2].value == 1.0 / 3
    assert got.data.params["model.gru_size"] == "32" and got.data.tags["speechcompress.shipped"] == "onnx"
    assert [(d.dataset.name, d.tags[0].value) for d in got.inputs.dataset_inputs] == [("train.npz", "training")]
    assert [a.path for a in local.list_artifacts(run, "reports")] == ["reports/report.txt"]
    assert got.info.status == "FINISHED"
    assert sync(journal, client=local) == (0, 0)  # nothing left: a second sync sends nothing twice

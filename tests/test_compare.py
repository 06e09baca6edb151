"""`speechcompress compare`: Pareto marking by hand, and the report from a real MLflow store."""

from pathlib import Path

from mlflow.tracking import MlflowClient

from speechcompress.cli import main
from speechcompress.tracking.compare import pareto_flags
from speechcompress.tracking.mlflow import SWEEP_TAG
from speechcompress.tracking.sweep import ROLE_TAG


def test_pareto_flags_by_hand():
    # (cost, quality): b dominates a (cheaper and better); c costs more but is best; d ties b's cost, worse
    points = [(200, 2.0), (100, 2.5), (400, 3.0), (100, 2.4), (400, 3.0)]
    assert pareto_flags(points) == [False, True, True, False, True]
    # lower is better (e.g. DCF): the cheapest, lowest one wins alone
    assert pareto_flags([(100, 0.2), (200, 0.1), (300, 0.3)], higher=False) == [True, True, False]


def _store(tmp_path: Path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("sweepy", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, run_name="sweepy sweep: compression.density",
                               tags={ROLE_TAG: "parent", SWEEP_TAG: "S1"})
    client.log_param(parent.info.run_id, "sweep.compression.density", "1.0,0.5,0.1")
    for density, size, pesq, rtf in [("1.0", 900_000, 2.0, 0.004), ("0.5", 500_000, 2.1, 0.003),
                                     ("0.1", 150_000, 1.7, 0.002)]:
        run = client.create_run(experiment, run_name=f"rnnoise-sparsify-d{density}",
                                tags={"mlflow.parentRunId": parent.info.run_id, SWEEP_TAG: "S1"})
        client.log_param(run.info.run_id, "compression.density", density)
        for key, value in {"test/pesq": pesq, "size/bytes": size, "latency/rtf": rtf, "test/stoi": 0.9}.items():
            client.log_metric(run.info.run_id, key, value)
        client.set_terminated(run.info.run_id)
    failed = client.create_run(experiment, run_name="crashed", tags={"mlflow.parentRunId": parent.info.run_id})
    client.set_terminated(failed.info.run_id, "FAILED")
    other = client.create_run(experiment, run_name="not-in-the-sweep")  # not a child: left out of the sweep's table
    client.log_metric(other.info.run_id, "test/pesq", 3.0)
    client.log_metric(other.info.run_id, "size/bytes", 1.0)
    client.set_terminated(other.info.run_id)
    return uri, parent.info.run_id


def test_compare_prints_the_table_writes_the_plot_and_logs_them_to_the_parent(tmp_path, capsys):
    uri, parent = _store(tmp_path)
    out = tmp_path / "reports"
    assert main(["compare", "--experiment", "sweepy", "--tracking-uri", uri, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and "sparsify" in line]
    assert [r.split("|")[2].strip() for r in rows] == ["rnnoise-sparsify-d0.1", "rnnoise-sparsify-d0.5",
                                                       "rnnoise-sparsify-d1.0"]  # by cost
    assert [r.split("|")[1].strip() for r in rows] == ["★", "★", ""]  # d1.0: bigger and worse than d0.5
    assert "compression.density" in printed and "crashed" in printed and "not-in-the-sweep" not in printed
    assert (out / "sweepy.md").read_text().startswith("# sweepy")
    assert (out / "sweepy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logged = {a.path for a in MlflowClient(uri).list_artifacts(parent, "reports")}
    assert logged == {"reports/sweepy.md", "reports/sweepy.png"}


def test_compare_names_what_is_missing(tmp_path, capsys):
    uri, _ = _store(tmp_path)
    assert main(["compare", "--experiment", "nope", "--tracking-uri", uri]) == 2
    assert "no MLflow experiment named 'nope'" in capsys.readouterr().err
    assert main(["compare", "--experiment", "sweepy", "--sweep", "S9", "--tracking-uri", uri]) == 2
    assert "has no sweep 'S9'" in capsys.readouterr().err

"""Full recipes checked for their acceptance figures. Slow (about 10 and 7 minutes): `make test-all`."""

import pytest

from .conftest import compose_config, sandbox_overrides


@pytest.mark.slow
def test_default_experiment_beats_the_noisy_input_by_a_quarter_pesq(tmp_path):
    from speechcompress.train import run

    metrics = run(compose_config(["+experiment=rnnoise", *sandbox_overrides(tmp_path)]))
    print(f"test PESQ-wb {metrics['test/pesq']:.3f} vs noisy {metrics['test/pesq_noisy']:.3f}")
    assert metrics["test/pesq"] >= metrics["test/pesq_noisy"] + 0.25
    assert metrics["test/pesq_errors"] == 0


@pytest.mark.slow
def test_fsmn_vad_reaches_frame_f1_of_0_93(tmp_path):
    from speechcompress.train import run

    metrics = run(compose_config(["+experiment=fsmn_vad", *sandbox_overrides(tmp_path)]))
    print(f"test frame F1 {metrics['test/f1']:.4f}, AUC {metrics['test/auc']:.4f}, DCF {metrics['test/dcf']:.4f}")
    assert metrics["test/f1"] >= 0.93
    assert metrics["test/noise_false_alarm"] < 0.1

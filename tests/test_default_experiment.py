"""Full recipes checked for their acceptance figures, each on a freshly made synthetic cache.
Slow (about 11 and 6 minutes): `make test-all`."""

import pytest

from .conftest import compose_config, sandbox_overrides


@pytest.mark.slow
def test_rnnoise_beats_the_noisy_input_by_a_quarter_pesq_on_seen_and_unseen_noise(tmp_path):
    from speechcompress.train import run

    metrics = run(compose_config(["+experiment=rnnoise", *sandbox_overrides(tmp_path)]))
    gain = {split: metrics[f"{split}/pesq"] - metrics[f"{split}/pesq_noisy"] for split in ("test", "test_unseen")}
    print(f"PESQ-wb gain: test {gain['test']:+.3f}, test_unseen {gain['test_unseen']:+.3f}")
    assert gain["test"] >= 0.25
    assert gain["test_unseen"] >= 0.8 * gain["test"]  # noises and voices it never met keep most of the gain
    assert metrics["test/pesq_errors"] == 0 and metrics["test_unseen/pesq_errors"] == 0


@pytest.mark.slow
def test_fsmn_vad_reaches_frame_f1_of_0_93_and_keeps_it_on_unseen_noise(tmp_path):
    from speechcompress.train import run

    metrics = run(compose_config(["+experiment=fsmn_vad", *sandbox_overrides(tmp_path)]))
    print(f"test frame F1 {metrics['test/f1']:.4f}, AUC {metrics['test/auc']:.4f}, DCF {metrics['test/dcf']:.4f}; "
          f"unseen F1 {metrics['test_unseen/f1']:.4f}, noise-only FA {metrics['test_unseen/noise_false_alarm']:.4f}")
    assert metrics["test/f1"] >= 0.93
    assert metrics["test/noise_false_alarm"] < 0.05
    assert metrics["test_unseen/f1"] >= metrics["test/f1"] - 0.02
    assert metrics["test_unseen/noise_false_alarm"] <= 0.05

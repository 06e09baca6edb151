"""The README's `make train` run, checked for its acceptance figure. Slow (about 10 minutes): `make test-all`."""

import pytest

from .conftest import compose_config, sandbox_overrides


@pytest.mark.slow
def test_default_experiment_beats_the_noisy_input_by_a_quarter_pesq(tmp_path):
    from speechcompress.train import run

    metrics = run(compose_config(["+experiment=rnnoise", *sandbox_overrides(tmp_path)]))
    print(f"test PESQ-wb {metrics['test/pesq']:.3f} vs noisy {metrics['test/pesq_noisy']:.3f}")
    assert metrics["test/pesq"] >= metrics["test/pesq_noisy"] + 0.25
    assert metrics["test/pesq_errors"] == 0

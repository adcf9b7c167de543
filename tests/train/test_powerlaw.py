"""The power-law fit of learning curves and its bootstrap interval (cnnkit.train.powerlaw)."""

import numpy as np
import pytest

from cnnkit.train.powerlaw import PowerLaw, bootstrap, fit_power_law

TRUE = PowerLaw(a=3.0, b=0.6, c=0.05)
SIZES = np.array([80, 160, 320, 560, 800] * 3, dtype=float)  # 5 fractions x 3 repeats


def test_exact_points_give_back_the_parameters():
    law = fit_power_law(SIZES, TRUE.error(SIZES))
    assert law.a == pytest.approx(3.0, rel=1e-6)
    assert law.b == pytest.approx(0.6, rel=1e-6)
    assert law.c == pytest.approx(0.05, abs=1e-8)
    assert law.rmse < 1e-9


def test_noisy_points_give_the_parameters_and_the_extrapolation_approximately():
    rng = np.random.default_rng(1)
    n = np.repeat(np.geomspace(50, 5000, 8), 20)
    law = fit_power_law(n, TRUE.error(n) + rng.normal(0, 0.003, n.size))
    assert law.b == pytest.approx(0.6, abs=0.1)
    assert law.c == pytest.approx(0.05, abs=0.01)
    assert float(law.accuracy(10_000)) == pytest.approx(float(TRUE.accuracy(10_000)), abs=0.01)


def test_a_flat_or_rising_error_fits_a_constant():
    law = fit_power_law([10, 20, 40, 80], [0.2, 0.25, 0.3, 0.35])
    assert law.a == 0.0 and law.c == pytest.approx(0.275)


def test_perfect_accuracy_everywhere_predicts_perfect_accuracy():
    law = fit_power_law([10, 20, 40], [0.0, 0.0, 0.0])
    assert float(law.accuracy(80)) == 1.0


@pytest.mark.parametrize(
    ("n", "err", "match"),
    [
        ([10, 10, 20, 20], [0.3, 0.3, 0.2, 0.2], "three or more training-set sizes"),
        ([10, 20, 0], [0.3, 0.2, 0.1], "n must be positive"),
        ([10, 20, 40], [0.3, 0.2, 1.5], r"error must be in \[0, 1\]"),
        ([10, 20, 40], [0.3, 0.2], "one value per point"),
    ],
)
def test_bad_points_are_refused_with_what_was_received(n, err, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(n, err)


def _simulate(rng, n_val=200, seed_sd=0.01):
    """Points of the true curve: each run's own accuracy (subset and seed jitter), scored on
    the same ``n_val`` validation images."""
    p = np.clip(TRUE.accuracy(SIZES) + rng.normal(0, seed_sd, SIZES.size), 0, 1)
    return rng.random((SIZES.size, n_val)) < p[:, None]  # (points, validation images)


def test_the_interval_covers_the_true_accuracy_at_2x_and_4x():
    """Coverage over independent simulated curves: close to the 95% asked for."""
    rng = np.random.default_rng(7)
    at = np.array([1600.0, 3200.0])
    truth = TRUE.accuracy(at)
    sims, covered, widths = 24, np.zeros(2), []
    for s in range(sims):
        band = bootstrap(SIZES, _simulate(rng), at, replicates=200, seed=s)
        covered += (band.lo <= truth) & (truth <= band.hi)
        widths.append(band.hi - band.lo)
    assert (covered / sims >= 0.83).all(), covered / sims  # 95% nominal; >= 20 of 24
    assert 0.005 < np.mean(widths) < 0.2  # an interval, not a point nor everything


def test_the_interval_narrows_with_more_validation_images():
    rng = np.random.default_rng(3)
    small = bootstrap(SIZES, _simulate(rng, n_val=50), [1600], replicates=300)
    large = bootstrap(SIZES, _simulate(rng, n_val=2000), [1600], replicates=300)
    assert (large.hi - large.lo)[0] < (small.hi - small.lo)[0]


def test_the_bootstrap_is_seeded_and_checks_its_input():
    hits = _simulate(np.random.default_rng(0))
    a = bootstrap(SIZES, hits, [1600], replicates=50, seed=4)
    b = bootstrap(SIZES, hits, [1600], replicates=50, seed=4)
    assert (a.lo == b.lo).all() and (a.hi == b.hi).all()
    with pytest.raises(ValueError, match="correct must be"):
        bootstrap(SIZES, hits[:3], [1600])

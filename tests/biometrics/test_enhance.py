"""Block analysis and contextual enhancement on synthetic ridge patterns."""

from __future__ import annotations

import numpy as np
import pytest

from edge.biometrics.blocks import block_field, block_spectra
from edge.biometrics.enhance import enhance
from tests.fixtures.biometrics import parallel_ridges


def _interior(a: np.ndarray) -> np.ndarray:
    return a[2:-2, 2:-2]


@pytest.mark.parametrize("normal", [0.0, 0.4, 1.2, 2.0, 2.9])
@pytest.mark.parametrize("period", [6.0, 9.0, 14.0])
def test_orientation_and_frequency_recovered(normal: float, period: float) -> None:
    image = parallel_ridges(period=period, normal=normal).astype(np.float32)
    field = block_field(block_spectra(image.mean() - image))
    expected = np.mod(normal + np.pi / 2, np.pi)  # ridges run across the wave vector
    error = np.abs(np.mod(_interior(field.orientation) - expected + np.pi / 2, np.pi) - np.pi / 2)
    assert error.max() < np.radians(3.0)
    assert np.allclose(_interior(field.frequency), 1.0 / period, rtol=0.06)
    assert _interior(field.coherence).min() > 0.9


def test_noise_has_low_coherence() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 40.0, (256, 256)).astype(np.float32)
    field = block_field(block_spectra(noise))
    assert np.median(field.coherence) < 0.5


def test_enhancement_restores_noisy_ridges() -> None:
    clean = parallel_ridges(period=9.0, normal=0.7).astype(np.float32)
    signal = clean.mean() - clean
    rng = np.random.default_rng(2)
    noisy = signal + rng.normal(0.0, 150.0, signal.shape).astype(np.float32)
    spectra = block_spectra(noisy)
    out = enhance(spectra, block_field(spectra))
    assert out.shape == noisy.shape
    assert out.dtype == np.float32

    def corr(a: np.ndarray) -> float:
        return float(np.corrcoef(a[16:-16, 16:-16].ravel(), signal[16:-16, 16:-16].ravel())[0, 1])

    assert corr(noisy) < 0.5
    assert corr(out) > 0.9

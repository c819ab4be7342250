"""Each impression effect does what its name says, measured on the rendered image."""

from __future__ import annotations

import numpy as np
from dr_sim.fingers import ImpressionSettings, SyntheticFinger
from scipy import ndimage

CENTRE = (slice(94, 194), slice(78, 178))


def _capture(**kwargs: object) -> np.ndarray:
    base: dict[str, object] = {
        "max_shift": 0.0,
        "max_rotation": 0.0,
        "distortion": 0.0,
        "pressure": (0.0, 0.0),
        "dryness": (0.0, 0.0),
        "moisture": (0.0, 0.0),
        "noise": 0.0,
    }
    settings = ImpressionSettings(**(base | kwargs))  # type: ignore[arg-type]
    return SyntheticFinger(11, settings=settings).capture(np.random.default_rng(4))


def _dark_fraction(image: np.ndarray) -> float:
    return float(np.mean(image[CENTRE] < 128))


def _mean_grey(image: np.ndarray) -> float:
    return float(np.mean(image[CENTRE]))


def test_pressure_thickens_ridges() -> None:
    light = _capture(pressure=(-0.6, -0.6))
    normal = _capture()
    hard = _capture(pressure=(0.8, 0.8))
    assert 0.2 < _dark_fraction(light) < _dark_fraction(normal) < _dark_fraction(hard)
    assert _dark_fraction(hard) > _dark_fraction(light) + 0.08


def test_moisture_fills_valleys() -> None:
    assert _mean_grey(_capture(moisture=(0.9, 0.9))) < _mean_grey(_capture()) - 8.0


def test_dryness_breaks_ridges() -> None:
    def fragments(image: np.ndarray) -> int:
        return int(ndimage.label(image[CENTRE] < 128)[1])

    assert fragments(_capture(dryness=(0.9, 0.9))) > 2 * fragments(_capture())


def test_noise_adds_grey_levels() -> None:
    clean = _capture()
    noisy = _capture(noise=12.0)
    # Flat background: the noise shows up as spread in the top rows.
    assert float(noisy[:10].std()) > float(clean[:10].std()) + 3.0


def test_placement_moves_the_print() -> None:
    still = _capture().astype(np.float64)
    rotated = _capture(max_rotation=20.0).astype(np.float64)
    same = _capture().astype(np.float64)
    assert np.array_equal(still, same)
    assert float(np.corrcoef(still[CENTRE].ravel(), rotated[CENTRE].ravel())[0, 1]) < 0.5

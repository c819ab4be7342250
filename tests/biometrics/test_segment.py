"""Block spectra and foreground segmentation on synthetic prints of any grey level."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from edge.biometrics.blocks import STEP, block_field, block_spectra
from edge.biometrics.segment import block_mask, tile_spread

_SIZE = 256
_CENTRE = _SIZE / 2
_RADIUS = 80.0


def _print_on_background(level: float, contrast: float, background: float) -> NDArray[np.float32]:
    """A disc of straight ridges (mean grey ``level``, amplitude ``contrast``) on a flat,
    slightly noisy background, as a dark wet print or a light dry one on a sensor."""
    rng = np.random.default_rng(7)
    r, c = np.mgrid[:_SIZE, :_SIZE].astype(np.float64)
    phase = 2 * np.pi * (c * np.cos(0.5) + r * np.sin(0.5)) / 9.0
    inside = np.hypot(r - _CENTRE, c - _CENTRE) < _RADIUS
    image = np.where(inside, level - contrast * np.cos(phase), background)
    image += rng.normal(0.0, 3.0, image.shape)
    return np.asarray(image, dtype=np.float32)


def _block_distance() -> NDArray[np.float64]:
    """Distance of each block's centre to the centre of the disc, pixels."""
    n = -(-_SIZE // STEP)
    centres = np.arange(n) * STEP + (STEP - 1) / 2
    return np.asarray(np.hypot(centres[:, None] - _CENTRE, centres[None, :] - _CENTRE))


def test_window_spectra_hold_no_mean() -> None:
    image = _print_on_background(60.0, 25.0, 200.0)
    spectra = block_spectra(np.float32(image.mean()) - image).spectra
    dc = np.abs(spectra[..., 0, 0])
    assert dc.max() < 1e-3 * np.abs(spectra).max()


@pytest.mark.parametrize(("level", "contrast"), [(60.0, 25.0), (128.0, 25.0), (190.0, 25.0)])
def test_print_is_foreground_whatever_its_grey_level(level: float, contrast: float) -> None:
    # A dark, low-contrast print (wet finger on a capacitive sensor) is as much a print as a
    # light one: the local grey level must not hide its ridges.
    image = _print_on_background(level, contrast, 210.0)
    field = block_field(block_spectra(np.float32(image.mean()) - image))
    mask = block_mask(field, tile_spread(image))
    distance = _block_distance()
    assert mask[distance < _RADIUS - STEP].all()
    assert not mask[distance > _RADIUS + 2 * STEP].any()
    share = field.energy / field.total_energy
    assert share[distance < _RADIUS - STEP].min() > 0.5

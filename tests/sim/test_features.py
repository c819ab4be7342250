"""Feature engines of the simulated module."""

from __future__ import annotations

import numpy as np
import pytest
from dr_sim.features import BiometricsEngine, FeatureFailure, IdentityEngine
from dr_sim.fingers import SyntheticFinger

from edge.drivers.r30x_commands import TEMPLATE_BYTES, Confirmation

RNG_SEED = 0


def test_identity_engine_scores_by_finger() -> None:
    engine = IdentityEngine()
    rng = np.random.default_rng(RNG_SEED)
    image = np.tile(np.arange(256, dtype=np.uint8), (288, 1))
    a1, a2, b = (engine.extract(image, finger_key=k, rng=rng) for k in ("a", "a", "b"))
    assert isinstance(a1, bytes)
    assert isinstance(a2, bytes)
    assert isinstance(b, bytes)
    assert len(a1) == TEMPLATE_BYTES
    assert a1 != a2  # two impressions differ
    assert engine.score(a1, a2) >= engine.threshold
    assert engine.score(a1, b) < engine.threshold
    assert engine.score(a1, bytes(TEMPLATE_BYTES)) == 0
    assert engine.score(b"", a1) == 0
    assert engine.merge(a1, a2) == a1


def test_identity_engine_refuses_a_blank_image() -> None:
    blank = np.zeros((288, 256), np.uint8)
    result = IdentityEngine().extract(blank, finger_key="a", rng=np.random.default_rng(0))
    assert result == FeatureFailure(Confirmation.TOO_FEW_FEATURES)


@pytest.fixture(scope="module")
def biometrics() -> BiometricsEngine:
    return BiometricsEngine()


def test_biometrics_engine_packs_minutiae_and_self_matches(biometrics: BiometricsEngine) -> None:
    rng = np.random.default_rng(RNG_SEED)
    image = SyntheticFinger(3).capture(rng)
    features = biometrics.extract(image, finger_key="ignored", rng=rng)
    assert isinstance(features, bytes)
    assert len(features) == TEMPLATE_BYTES
    assert features.startswith(b"DRSIMMN1")
    assert biometrics.score(features, features) >= biometrics.threshold
    assert biometrics.score(features, bytes(TEMPLATE_BYTES)) == 0


def test_biometrics_engine_blank_image(biometrics: BiometricsEngine) -> None:
    blank = np.full((288, 256), 255, np.uint8)
    result = biometrics.extract(blank, finger_key="x", rng=np.random.default_rng(0))
    assert result == FeatureFailure(Confirmation.TOO_FEW_FEATURES)

"""SyntheticFinger: generated masters, fresh impressions, determinism and the module format."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from dr_sim.fingers import (
    MASTER_SHAPE,
    SENSOR_SHAPE,
    FingerClass,
    FingerSource,
    ImpressionSettings,
    SyntheticFinger,
    master_print,
)


def test_same_identity_gives_the_same_master() -> None:
    first = master_print(11)
    master_print.cache_clear()
    again = master_print(11)
    assert first is not again
    assert np.array_equal(first.ridges, again.ridges)
    assert first.finger_class is again.finger_class


def test_same_identity_gives_the_same_images_in_another_process() -> None:
    # The simulator and its host run in separate processes: the finger must not depend on
    # anything of the process (hash seeds, import order, caches).
    code = (
        "import hashlib, numpy as np\n"
        "from dr_sim.fingers import SyntheticFinger\n"
        "image = SyntheticFinger(11).capture(np.random.default_rng(9))\n"
        "print(hashlib.sha256(image.tobytes()).hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    here = SyntheticFinger(11).capture(np.random.default_rng(9))
    assert out.stdout.strip() == hashlib.sha256(here.tobytes()).hexdigest()


def test_different_identities_give_different_masters() -> None:
    a, b = master_print(11).ridges, master_print(12).ridges
    assert a.shape == b.shape == MASTER_SHAPE
    assert float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.2


def test_master_is_read_only_and_in_range() -> None:
    master = master_print(11)
    assert master.ridges.dtype == np.float32
    assert -1.0 <= float(master.ridges.min()) < -0.9
    assert 0.9 < float(master.ridges.max()) <= 1.0
    with pytest.raises(ValueError, match="read-only"):
        master.ridges[0, 0] = 0.0


def test_capture_has_the_module_format() -> None:
    finger = SyntheticFinger(11)
    assert isinstance(finger, FingerSource)
    image = finger.capture(np.random.default_rng(3))
    assert image.shape == SENSOR_SHAPE
    assert image.dtype == np.uint8
    assert set(np.unique(image).tolist()) <= {17 * k for k in range(16)}
    # Dark ridges on a light background: the background dominates the border rows.
    assert float(np.median(image[:8])) > 170
    # Both ridges and valleys are present: a wide spread of grey levels.
    assert len(np.unique(image)) >= 8


def test_capture_is_a_function_of_the_generator_state() -> None:
    finger = SyntheticFinger(11)
    a = finger.capture(np.random.default_rng(5))
    b = finger.capture(np.random.default_rng(5))
    c = finger.capture(np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_each_capture_is_a_fresh_impression() -> None:
    finger = SyntheticFinger(11)
    rng = np.random.default_rng(0)
    images = [finger.capture(rng) for _ in range(3)]
    assert not np.array_equal(images[0], images[1])
    assert not np.array_equal(images[1], images[2])


def test_forced_class_is_honoured() -> None:
    finger = SyntheticFinger(11, finger_class=FingerClass.ARCH)
    assert finger.master.finger_class is FingerClass.ARCH
    assert finger.master.singular_points.cores == ()


def test_still_settings_give_a_steady_finger() -> None:
    still = ImpressionSettings(
        max_shift=0,
        max_rotation=0,
        distortion=0,
        pressure=(0, 0),
        dryness=(0, 0),
        moisture=(0, 0),
        noise=0,
    )
    finger = SyntheticFinger(11, settings=still)
    a = finger.capture(np.random.default_rng(1)).astype(np.int16)
    b = finger.capture(np.random.default_rng(2)).astype(np.int16)
    # Only lighting, contact and skin-texture fluctuations remain: much the same image, far
    # closer than two ordinary impressions, which also move and deform.
    still_r = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    moving = SyntheticFinger(11)
    c = moving.capture(np.random.default_rng(1)).astype(np.int16)
    d = moving.capture(np.random.default_rng(2)).astype(np.int16)
    assert still_r > 0.75
    assert still_r > float(np.corrcoef(c.ravel(), d.ravel())[0, 1]) + 0.2


@pytest.mark.parametrize("identity", [-1, 2.5, True, "7"])
def test_bad_identity_is_refused(identity: object) -> None:
    with pytest.raises((ValueError, TypeError), match="identity"):
        SyntheticFinger(identity)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"pressure": (-2.0, 0.0)}, {"dryness": (0.5, 0.2)}, {"noise": -1.0}],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        ImpressionSettings(**kwargs)  # type: ignore[arg-type]

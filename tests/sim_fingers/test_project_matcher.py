"""The project's own extractor and matcher tell synthetic fingers apart, like real ones."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
from dr_sim.fingers import SENSOR_DPI, SyntheticFinger


def _engine() -> tuple[Callable[..., Any], Callable[[Any, Any], float]]:
    core = importlib.import_module("edge.biometrics")
    if hasattr(core, "extract") and hasattr(core, "compare"):
        return core.extract, core.compare
    # Until the package re-exports them.
    pipeline = importlib.import_module("edge.biometrics.pipeline")
    matcher = importlib.import_module("edge.biometrics.matcher")
    return pipeline.extract, matcher.compare


def test_genuine_scores_beat_impostor_scores() -> None:
    extract, compare = _engine()
    rng = np.random.default_rng(77)
    fingers = [SyntheticFinger(i) for i in (41, 42, 43)]
    templates = {
        f.identity: [extract(f.capture(rng), dpi=SENSOR_DPI).template for _ in range(2)]
        for f in fingers
    }
    for views in templates.values():
        assert len(views[0].minutiae) >= 12  # a print, not noise: minutiae are found
    # The matcher's logistic may overflow in exp for far-off values (a harmless 0); that
    # warning belongs to the matcher's own tests, not to this one.
    with np.errstate(over="ignore"):
        genuine = [compare(*templates[f.identity]) for f in fingers]
        impostor = [
            compare(templates[a.identity][0], templates[b.identity][1])
            for a, b in itertools.permutations(fingers, 2)
        ]
    assert float(np.mean(genuine)) > 3 * float(np.mean(impostor)), (genuine, impostor)
    assert float(np.median(genuine)) > max(impostor), (genuine, impostor)

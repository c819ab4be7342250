"""The project's own extractor and matcher tell synthetic fingers apart, like real ones."""

from __future__ import annotations

import itertools

import numpy as np
from dr_sim.fingers import SENSOR_DPI, SyntheticFinger

from edge.biometrics import compare, extract


def test_genuine_scores_beat_impostor_scores() -> None:
    rng = np.random.default_rng(77)
    fingers = [SyntheticFinger(i) for i in (41, 42, 43)]
    templates = {
        f.identity: [extract(f.capture(rng), dpi=SENSOR_DPI).template for _ in range(2)]
        for f in fingers
    }
    for views in templates.values():
        assert len(views[0].minutiae) >= 12  # a print, not noise: minutiae are found
    genuine = [compare(*templates[f.identity]) for f in fingers]
    impostor = [
        compare(templates[a.identity][0], templates[b.identity][1])
        for a, b in itertools.permutations(fingers, 2)
    ]
    assert float(np.mean(genuine)) > 3 * float(np.mean(impostor)), (genuine, impostor)
    assert float(np.median(genuine)) > max(impostor), (genuine, impostor)

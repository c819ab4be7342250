"""Write impressions of synthetic fingers as PNG files, to look at them.

``python -m dr_sim.fingers --identity 7 --count 4 -o out/`` writes ``out/7_1.png`` ... (FVC
naming, so that ``dr-bio eval`` can read the folder). ``--fvc2002`` varies the impressions as the
FVC2002 protocol did (normal, displaced, rotated, dry, wet).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .impression import DEFAULT_SETTINGS, fvc2002_settings
from .sensor import SENSOR_DPI
from .synthetic import SyntheticFinger


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dr_sim.fingers", description="Write synthetic fingerprint impressions."
    )
    parser.add_argument("--identity", type=int, nargs="+", default=[7], help="finger seeds")
    parser.add_argument("--count", type=int, default=4, help="impressions per finger")
    parser.add_argument("--seed", type=int, default=0, help="seed of the impressions")
    parser.add_argument("--fvc2002", action="store_true", help="FVC2002 acquisition protocol")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write to")
    args = parser.parse_args(argv)
    if args.count < 1 or any(i < 0 for i in args.identity):
        parser.error("--count must be >= 1 and identities >= 0")
    args.output.mkdir(parents=True, exist_ok=True)
    for identity in args.identity:
        for k in range(1, args.count + 1):
            settings = fvc2002_settings(k) if args.fvc2002 else DEFAULT_SETTINGS
            finger = SyntheticFinger(identity, settings=settings)
            image = finger.capture(np.random.default_rng([args.seed, identity, k]))
            path = args.output / f"{identity}_{k}.png"
            Image.fromarray(image).save(path, dpi=(SENSOR_DPI, SENSOR_DPI))
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``dr-bio``: fingerprint tools for developers and evaluators (not for the agent console).

    dr-bio extract IMAGE --dpi N -o OUT.iso [--position P] [--preview OUT.png]
        writes the ISO/IEC 19794-2:2005 record, prints the quality report as JSON
    dr-bio match A.iso B.iso
        prints the comparison score of the first finger view of each record
    dr-bio show RECORD
        prints an ISO/IEC 19794-2 or ANSI/INCITS 378 record as JSON
    dr-bio eval DIR [DIR ...] --dpi N [--processes K]
        FVC and extended protocols on folders in FVC naming, one JSON object

``--dpi`` of ``eval`` applies to every folder given: evaluate folders of different resolutions
in separate runs (FVC2002: db1, db3 and db4 at 500 dpi, db2 at 569 dpi), or with
``python -m bench biometrics``, which knows them. Records and images written by this tool are
plain files: it is meant for test data, never for citizens' fingerprints.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .errors import BiometricError
from .evaluation import (
    default_engine,
    default_processes,
    evaluate_folder,
    load_grey_image,
    summarise,
)
from .iso19794 import TemplateFormatError, decode_template, encode_iso19794_2
from .preview import render_preview
from .types import FingerPosition

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1


def _write_atomically(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so that an interrupted run never
    leaves a half-written record where a good one was."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _cmd_extract(args: argparse.Namespace) -> int:
    image = load_grey_image(args.image)
    extraction = default_engine().extract(image, dpi=args.dpi)
    template = replace(extraction.template, position=FingerPosition(args.position))
    _write_atomically(args.output, encode_iso19794_2([template]))
    if args.preview is not None:
        _write_atomically(args.preview, render_preview(image, template.minutiae))
    quality = extraction.quality
    report = {
        "score": quality.score,
        "measures": dict(quality.measures),
        "advice": [str(a) for a in quality.advice],
    }
    print(json.dumps(report, indent=2, sort_keys=True))
    return EXIT_OK


def _cmd_match(args: argparse.Namespace) -> int:
    views = []
    for path in (args.a, args.b):
        record = decode_template(path.read_bytes())
        if not record.views:
            raise TemplateFormatError("record holds no finger view", field=str(path), offset=None)
        views.append(record.views[0])
    engine = default_engine()
    score = engine.compare(engine.prepare(views[0]), engine.prepare(views[1]))
    print(f"{score:.6g}")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    record = decode_template(args.record.read_bytes())
    document = {
        "format": str(record.format),
        "length": record.length,
        "length_field": record.length_field,
        "width": record.width,
        "height": record.height,
        "resolution_ppcm": [record.x_resolution, record.y_resolution],
        "capture_equipment": {
            "id": record.capture_equipment_id,
            "compliance": record.capture_equipment_compliance,
        },
        "views": [
            {
                "position": view.position.name.lower(),
                "view_number": number,
                "impression": view.impression,
                "quality": view.quality,
                "minutiae": [
                    {
                        "x": m.x,
                        "y": m.y,
                        "angle_deg": round(math.degrees(m.angle), 3),
                        "kind": m.kind.name.lower(),
                        "quality": m.quality,
                    }
                    for m in view.minutiae
                ],
                "extended_data": [
                    {"type": block.type_id, "data": block.data.hex()} for block in blocks
                ],
            }
            for view, number, blocks in zip(
                record.views, record.view_numbers, record.extended_data, strict=True
            )
        ],
    }
    print(json.dumps(document, indent=2))
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    names = [folder.resolve().name for folder in args.folders]
    if len(set(names)) != len(names):
        raise ValueError(f"folders must have distinct names (they key the results): {names}")
    results = {
        name: evaluate_folder(folder, dpi=args.dpi, processes=args.processes)
        for name, folder in zip(names, args.folders, strict=True)
    }
    for name, result in results.items():
        for failure in result.failures:
            print(f"dr-bio: {name}: extraction refused {failure}", file=sys.stderr)
    print(json.dumps(summarise(results), indent=2))
    return EXIT_OK


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dr-bio", description="Fingerprint templates, matching and evaluation tools"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    extract = sub.add_parser("extract", help="extract minutiae, write an ISO 19794-2 record")
    extract.add_argument("image", type=Path, help="grey image (tif, png, bmp)")
    extract.add_argument("--dpi", type=_positive_float, required=True, help="image resolution")
    extract.add_argument("-o", "--output", type=Path, required=True, help="record to write")
    extract.add_argument(
        "--position",
        type=int,
        choices=[int(p) for p in FingerPosition],
        default=int(FingerPosition.UNKNOWN),
        help="ISO finger position code (default 0, unknown)",
    )
    extract.add_argument("--preview", type=Path, help="also write a PNG preview")
    extract.set_defaults(func=_cmd_extract)

    match = sub.add_parser("match", help="compare two records (first finger view of each)")
    match.add_argument("a", type=Path)
    match.add_argument("b", type=Path)
    match.set_defaults(func=_cmd_match)

    show = sub.add_parser("show", help="print an ISO 19794-2 or ANSI 378 record as JSON")
    show.add_argument("record", type=Path)
    show.set_defaults(func=_cmd_show)

    evaluate = sub.add_parser("eval", help="FVC protocol evaluation of folders")
    evaluate.add_argument("folders", type=Path, nargs="+", metavar="DIR")
    evaluate.add_argument(
        "--dpi", type=_positive_float, required=True, help="resolution of every folder's images"
    )
    evaluate.add_argument(
        "--processes",
        type=int,
        default=default_processes(),
        help="worker processes (default: usable CPUs, at most 2)",
    )
    evaluate.set_defaults(func=_cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (TemplateFormatError, BiometricError, OSError, ValueError) as error:
        print(f"dr-bio: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return result


if __name__ == "__main__":
    sys.exit(main())

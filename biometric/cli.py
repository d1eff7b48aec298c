"""`cardbound biometric ...`: a face-engine demo (`compare`) and the accuracy report (`evaluate`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from biometric.errors import BiometricCommandError, BiometricFailure


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("biometric", help="face engine: 1:1 compare of two photos, accuracy report")
    sub = p.add_subparsers(dest="biometric_command", metavar="ACTION")

    def usage(_args: argparse.Namespace) -> BiometricFailure:
        p.print_help()
        return BiometricFailure.USAGE

    p.set_defaults(handler=usage)

    c = sub.add_parser("compare", help="1:1 compare: PHOTO1 as the enrolment sample, PHOTO2 as the live probe")
    c.add_argument("photo1", type=Path)
    c.add_argument("photo2", type=Path)
    c.add_argument("--threshold", type=float, default=None, help="decision threshold (default: DEFAULT_THRESHOLD)")
    c.add_argument("--preset", choices=("desk", "gate"), default="gate", help="quality preset (default gate)")
    c.add_argument("--allow-several", action="store_true",
                   help="when several faces are found, let the preset pick the subject (gate: the most central face)")
    c.add_argument("--lang", choices=("fr", "nl", "en"), default="en", help="language of quality messages")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(handler=_compare)

    e = sub.add_parser("evaluate", help="accuracy on LFW pairs files, next to stock face_recognition")
    e.add_argument("--pairs", type=Path, required=True, help="pairs file to report on (e.g. pairsDevTest.txt)")
    e.add_argument("--images", type=Path, required=True, help="LFW image root (<name>/<name>_NNNN.jpg)")
    e.add_argument("--tune-on", type=Path, default=None, help="pairs file to choose the threshold on")
    e.add_argument("--out", type=Path, default=Path("reports"), help="report directory (default ./reports)")
    e.add_argument("--jitters", type=int, default=None, help="enrolment jitters (default: engine default)")
    e.add_argument("--workers", type=int, default=None, help="processes (default: min(2, CPUs))")
    e.add_argument("--limit", type=int, default=None, help="use only the first N genuine and N impostor pairs")
    e.add_argument("--no-stock", action="store_true", help="skip the stock face_recognition pipeline")
    e.set_defaults(handler=_evaluate)


def _guard(fn: Callable[[], int], lang: str = "en") -> int:
    from biometric.errors import CameraError, ImageError, TemplateError
    from biometric.quality import QualityFailure

    try:
        return fn()
    except QualityFailure as exc:
        raise BiometricCommandError(f"quality: {exc.reason}: {exc.message(lang)}", BiometricFailure.QUALITY) from exc  # type: ignore[arg-type]
    except CameraError as exc:
        raise BiometricCommandError(str(exc), BiometricFailure.NO_CAMERA) from exc
    except ImageError as exc:
        raise BiometricCommandError(f"{type(exc).__name__}: {exc}", BiometricFailure.INPUT) from exc
    except TemplateError as exc:
        raise BiometricCommandError(str(exc), BiometricFailure.TEMPLATE_INVALID) from exc


def _compare(args: argparse.Namespace) -> int:
    def run() -> int:
        from biometric import DEFAULT_THRESHOLD, PRESETS, FaceEngine, compare, decide, load_path, sensitive

        threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
        if not 0.0 < threshold < 2.0:
            raise BiometricCommandError("--threshold must be in (0, 2)", BiometricFailure.USAGE)
        engine = FaceEngine(quality=PRESETS[args.preset])
        several = args.allow_several
        with sensitive(load_path(args.photo1)) as f1, sensitive(engine.analyse(f1, allow_several=several)) as s1:
            f1.fill(0)
            ref = engine.reference_template([s1])
        with sensitive(ref), sensitive(load_path(args.photo2)) as f2:
            s2 = engine.analyse(f2, allow_several=several)
            f2.fill(0)
            with sensitive(s2), sensitive(engine.probe_template(s2)) as probe:
                distance = compare(ref, probe)
        match = decide(distance, threshold)
        if args.json:
            print(json.dumps({"distance": round(distance, 4), "threshold": threshold, "match": match}))
        else:
            print(f"distance {distance:.4f}  threshold {threshold:.4f}  {'MATCH' if match else 'NO MATCH'}")
        return 0

    return _guard(run, args.lang)


def _evaluate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from biometric.engine import EngineConfig
    from biometric.evaluate import MissingExtra, PairsFormatError, evaluate

    for path, what in ((args.pairs, "--pairs"), (args.tune_on, "--tune-on")):
        if path is not None and not path.is_file():
            raise BiometricCommandError(f"{what} {path}: no such file", BiometricFailure.INPUT)
    if not args.images.is_dir():
        raise BiometricCommandError(f"--images {args.images}: no such directory", BiometricFailure.INPUT)
    config = EngineConfig()
    if args.jitters is not None:
        if args.jitters < 0:
            raise BiometricCommandError("--jitters must be >= 0", BiometricFailure.USAGE)
        config = replace(config, enrol_jitters=args.jitters)
    try:
        report: dict[str, Any] = evaluate(
            args.pairs,
            args.images,
            tune_on=args.tune_on,
            out=args.out,
            config=config,
            workers=args.workers,
            limit=args.limit,
            stock=not args.no_stock,
        )
    except PairsFormatError as exc:
        raise BiometricCommandError(str(exc), BiometricFailure.INPUT) from exc
    except MissingExtra as exc:
        raise BiometricCommandError(str(exc), BiometricFailure.MISSING_EXTRA) from exc
    except FileNotFoundError as exc:
        raise BiometricCommandError(str(exc), BiometricFailure.INPUT) from exc
    sys.stdout.flush()
    print(json.dumps(report, separators=(",", ":")))
    return 0

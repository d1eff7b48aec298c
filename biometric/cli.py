"""`cardbound biometric ...`: a face-engine demo (`compare`) and the accuracy report (`evaluate`)."""

from __future__ import annotations

import argparse
import json
import sys
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


def _compare(args: argparse.Namespace) -> int:
    """Both photos are decoded and described in the sandboxed worker, as at the desk and the gate: this process
    only ever sees the distance (or the quality reasons)."""
    from biometric import DEFAULT_THRESHOLD, decide
    from biometric.capture import SampleSource
    from biometric.isolation import FaceWorker, IsolationError, RequestFailed, SampleUnusable
    from biometric.quality import QualityReason, message

    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    if not 0.0 < threshold < 2.0:
        raise BiometricCommandError("--threshold must be in (0, 2)", BiometricFailure.USAGE)
    source = SampleSource.photos(str(args.photo1), str(args.photo2))
    try:
        with FaceWorker() as worker:
            result = worker.compare_photos(source, preset=args.preset, allow_several=args.allow_several)
    except SampleUnusable as exc:
        failure = BiometricFailure.NO_CAMERA if exc.kind == "CameraError" else BiometricFailure.INPUT
        raise BiometricCommandError(f"{exc.kind}: {exc.detail}", failure) from None
    except RequestFailed as exc:
        if exc.kind == "TemplateError":
            raise BiometricCommandError(exc.detail, BiometricFailure.TEMPLATE_INVALID) from None
        raise BiometricCommandError(f"face worker: {exc}", BiometricFailure.WORKER) from None
    except IsolationError as exc:
        raise BiometricCommandError(f"face worker: {exc}", BiometricFailure.WORKER) from None
    if result.distance is None:
        reason = QualityReason(result.reasons[0])
        raise BiometricCommandError(f"quality: photo {result.failed_photo}: {reason}: {message(reason, args.lang)}",
                                    BiometricFailure.QUALITY)
    match = decide(result.distance, threshold)
    if args.json:
        print(json.dumps({"distance": round(result.distance, 4), "threshold": threshold, "match": match}))
    else:
        print(f"distance {result.distance:.4f}  threshold {threshold:.4f}  {'MATCH' if match else 'NO MATCH'}")
    return 0


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

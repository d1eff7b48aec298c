"""Command-line entry of the virtual card (shared by `cardbound card virtual` and `python -m
card.virtual`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from card.virtual.emulator import VirtualPivCard
from card.virtual.image import CardImage, ImageError
from card.virtual.vpcd import Faults, serve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, type=Path, help="card image file (created if missing)")
    parser.add_argument(
        "--reader",
        type=int,
        default=0,
        choices=range(0, 10),
        metavar="N",
        help="vpcd reader index (0 = 'Virtual PCD 00 00' on TCP 35963)",
    )
    parser.add_argument("--drop-after", type=int, metavar="N", help="fault: pull the card after N APDUs")
    parser.add_argument("--freeze-after", type=int, metavar="N", help="fault: stop answering after N APDUs")
    parser.add_argument("--delay-ms", type=int, default=0, metavar="X", help="fault: delay every reply by X ms")
    parser.add_argument("--t0", action="store_true", help="behave like a T=0 card (61xx/6Cxx, no extended length)")
    parser.add_argument("--no-fsync", action="store_true", help="atomic but not fsynced image writes (benchmarks only)")
    parser.add_argument("--no-extended", action="store_true", help="do not announce extended length")
    parser.add_argument("--hostile", choices=("foreign", "mute", "random", "truncated"),
                        help="tests: serve a hostile card instead of the PIV card (the image is not used)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hostile card's random replies")


def run(args: argparse.Namespace) -> int:
    """Raises ImageError for an unusable image; otherwise serves until SIGTERM."""
    faults = Faults(drop_after=args.drop_after, freeze_after=args.freeze_after, delay_ms=args.delay_ms)
    if getattr(args, "hostile", None):
        from card.virtual.hostile import HostileCard

        return serve(HostileCard(args.hostile, args.seed), args.reader, faults)  # type: ignore[arg-type]
    image = CardImage.load_or_create(args.image)
    image.durable = not args.no_fsync
    card = VirtualPivCard(image, t0=args.t0, extended=not args.no_extended)
    return serve(card, args.reader, faults)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m card.virtual", description="virtual PIV card for vpcd")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ImageError as exc:
        print(f"virtual card: error: {exc}", file=sys.stderr)
        return 4

"""`cardbound demo`: the whole story on virtual cards with real photos, through the real components.

pcscd + vsmartcard-vpcd + two virtual PIV cards; the keystore (CA, station, verifier key); the sandboxed face
worker; the audit log. Two people are enrolled on two cards; the gate then sees genuine holders (accepted), an
impostor with someone else's card, a tampered card, a cloned card, a container copied to another card, a banned
holder (all refused); a table of decisions and timings follows, and the audit log is verified at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from cardbound.errors import CliError, ExitCode
from cardbound.home import Home

FACES_ENV = "CARDBOUND_FACES"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the whole story on virtual cards with real photos (enrol, gate decisions, audit verification)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--faces", type=Path, default=None,
                   help=f"the shared faces folder (default: ${FACES_ENV}, else ../shared/faces beside the repo)")
    p.add_argument("--lang", choices=("fr", "nl", "en"), default="en", help="language of the gate messages")
    p.add_argument("--backend", choices=("file", "pkcs11"), default="file",
                   help="where private keys live: encrypted files, or non-extractable keys in SoftHSM2 tokens")
    p.set_defaults(handler=run)


def find_faces(explicit: Path | None) -> Path:
    candidates = [explicit] if explicit else []
    if os.environ.get(FACES_ENV):
        candidates.append(Path(os.environ[FACES_ENV]))
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "faces", Path.cwd().parent / "shared" / "faces"]
    for c in candidates:
        if c is not None and (c / "portraits" / "face_recognition").is_dir():
            return c
    raise CliError("the test photos were not found: pass --faces DIR (the shared/faces folder)", ExitCode.INPUT)


def _say(text: str) -> None:
    print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    from cardbound import story

    faces = find_faces(args.faces)
    home: Home = args.home_dir
    home.ensure()
    demo_dir = home.root / "demo"
    if demo_dir.exists():
        shutil.rmtree(demo_dir)  # virtual card images of a previous run: the story starts from blank cards
    demo_dir.mkdir(mode=0o700)
    t0 = time.perf_counter()
    scenes = story.tell(home, faces, demo_dir, say=_say, lang=args.lang, backend=args.backend)
    _say("")
    _say(f"{'scene':<60} {'decision':<8} {'reason':<18} {'dist/thr':>11} {'total':>7} {'card':>7} {'face':>7}")
    bad = 0
    for sc in scenes:
        d = sc.decision
        got = "accept" if d.accepted else "reject"
        t = d.timings_ms
        card_ms = sum(t.get(k, 0.0) for k in ("card_auth", "card_read", "unseal"))
        face_ms = t.get("capture", 0.0) + t.get("compare", 0.0)
        mark = "" if got == sc.expected else "   <-- UNEXPECTED"
        bad += got != sc.expected
        dist = "" if d.distance is None else f"{d.distance:.3f}/{d.threshold:.2f}"
        _say(f"{sc.title:<60} {got:<8} {d.reason.value:<18} {dist:>11} {t.get('total', 0):>5.0f}ms {card_ms:>5.0f}ms "
             f"{face_ms:>5.0f}ms{mark}")
    _say(f"\n{len(scenes) - bad}/{len(scenes)} decisions as expected; demo took {time.perf_counter() - t0:.1f} s")
    return int(ExitCode.FAILURE) if bad else 0


__all__ = ["register", "run"]

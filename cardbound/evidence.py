"""`cardbound evidence ...`: probe, build, verify, key. Composition-root adapter over `iso27001_evidence.*`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cardbound.errors import CliError, ExitCode
from cardbound.home import Home
from iso27001_evidence import manifest, pack, probes
from iso27001_evidence.sources import Period

ENROL_PHOTO = Path("portraits/face_recognition/obama/obama.jpg")
LIVE_PHOTO = Path("portraits/face_recognition/obama/obama2.jpg")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _node_id(home: Home) -> str:
    """The station's audit node id (the one recorded in its log when it has one)."""
    return home.node_id


def _photos(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    if args.photo or args.live:
        if not (args.photo and args.live):
            raise CliError("give both --photo (enrolment) and --live (gate) photos", ExitCode.USAGE)
        return Path(args.photo), Path(args.live)
    from cardbound.demo import find_faces

    try:
        faces = find_faces(Path(args.faces) if args.faces else None)
    except CliError:
        return None, None  # the write-watch probe then says NOT RUN, and why
    return faces / ENROL_PHOTO, faces / LIVE_PHOTO


def _config(args: argparse.Namespace) -> probes.ProbeConfig:
    home: Home = args.home_dir
    home.ensure()
    enrol_photo, live_photo = _photos(args)
    only = set(args.only) if args.only else None
    if only and not only <= set(probes.PROBES):
        raise CliError(f"unknown probe: {', '.join(sorted(only - set(probes.PROBES)))} "
                       f"(choose from {', '.join(probes.PROBES)})", ExitCode.USAGE)
    return probes.ProbeConfig(home=home.root, node_id=_node_id(home), cardbound=probes.default_command(),
                              python=Path(sys.executable), enrol_photo=enrol_photo, live_photo=live_photo,
                              dsn=args.dsn, scan_extra=[Path(p) for p in args.scan or []], only=only, say=_say)


def _print_run(run: probes.ProbeRun) -> None:
    for r in run.results:
        print(f"{r.result:8} {r.probe:20} §3 {','.join(f'{c}°' for c in r.conditions):8} {r.duration_s:6.1f} s")
        for f in r.findings:
            print(f"         - {f}")
    verdict = "CONFORME" if run.conform else "NON CONFORME" if any(r.result == probes.FAIL for r in run.results) \
        else "INCOMPLET"
    print(f"{verdict}: {sum(r.result == probes.PASS for r in run.results)}/{len(run.results)} probes passed "
          f"(run {run.run_id}, {run.software_version}, node {run.node_id})")


def _probe(args: argparse.Namespace) -> int:
    run = probes.run_probes(_config(args))
    if args.json:
        print(json.dumps(run.to_json(), indent=2, ensure_ascii=False))
    else:
        _print_run(run)
    return ExitCode.OK if run.conform else ExitCode.FAILURE


def _build(args: argparse.Namespace) -> int:
    try:
        period = Period.parse(args.period)
    except ValueError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    cfg = _config(args)
    if args.probes:
        try:
            run = probes.ProbeRun.from_json(json.loads(Path(args.probes).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{args.probes}: not a probe result file ({exc})", ExitCode.INPUT) from None
    else:
        run = probes.run_probes(cfg)
    try:
        result = pack.build(pack.BuildConfig(
            home=cfg.home, node_id=cfg.node_id, period=period, out=Path(args.out).absolute(),
            cardbound=cfg.cardbound, python=cfg.python, run=run, dsn=args.dsn, sbom=not args.no_sbom, say=_say))
    except pack.PackError as exc:
        raise CliError(str(exc), ExitCode.INPUT) from None
    for n in result.notes:
        _say(f"note: {n}")
    verdict = {"conform": "CONFORME", "nonconform": "NON CONFORME", "incomplete": "INCOMPLET"}[result.verdict]
    print(f"{verdict}: pack {result.out} ({result.files} files, signed; evidence key {result.fingerprint})")
    return ExitCode.OK


def _verify(args: argparse.Namespace) -> int:
    report = pack.verify(Path(args.pack), progress=_say, expected_fingerprint=args.fingerprint)
    for line in report.info:
        print(line)
    for line in report.findings:
        print(line)
    if report.ok:
        print(f"OK: pack {args.pack} verified (signature, every hash, no file missing or added, audit checkpoints)")
        return ExitCode.OK
    print(f"FAILED: {len(report.findings)} problem(s) in {args.pack}")
    return ExitCode.AUDIT


def _key(args: argparse.Namespace) -> int:
    home: Home = args.home_dir
    key = manifest.load_or_create_key(home.keystore)
    pem = manifest.public_pem(key)
    print(pem.decode().rstrip())
    print(f"sha256 fingerprint: {manifest.fingerprint(pem)}")
    return ExitCode.OK


def _probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--photo", help="enrolment photo for the probe (default: the shared faces folder)")
    p.add_argument("--live", help="live photo of the same person for the gate probe")
    p.add_argument("--faces", help="the shared faces folder (default: $CARDBOUND_FACES or ../shared/faces)")
    p.add_argument("--only", action="append", metavar="PROBE", help=f"run only this probe ({', '.join(probes.PROBES)})")
    p.add_argument("--dsn", help="central PostgreSQL audit store to scan (when configured)")
    p.add_argument("--scan", action="append", metavar="PATH", help="another place the station writes (repeat)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = subparsers.add_parser("evidence", help="evidence pack for the recognition audit (art. 2.5.2.85 §2)")
    sub = ev.add_subparsers(dest="evidence_action", metavar="ACTION", required=True)
    p = sub.add_parser("probe", help="run the §3 conformance probes on the installed system (audited)")
    _probe_args(p)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=_probe)
    p = sub.add_parser("build", help="build the signed evidence pack (FR/NL/EN, PDF, SoA, OSCAL, SBOM)")
    p.add_argument("--period", required=True, metavar="FROM..TO", help="audit period, e.g. 2026-01-01..2026-12-31")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (new or empty)")
    p.add_argument("--probes", metavar="FILE", help="use the results of an earlier `evidence probe --json`")
    p.add_argument("--no-sbom", action="store_true", help="skip the CycloneDX SBOM")
    _probe_args(p)
    p.set_defaults(handler=_build)
    p = sub.add_parser("verify", help="check a pack: signature, every hash, files missing or added, checkpoints")
    p.add_argument("pack", metavar="PACK")
    p.add_argument("--fingerprint", help="expected SHA-256 fingerprint of the processor's evidence key")
    p.set_defaults(handler=_verify)
    p = sub.add_parser("key", help="print the processor's evidence public key and its fingerprint")
    p.set_defaults(handler=_key)

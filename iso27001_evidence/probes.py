"""§3 conformance probes on the installed system (art. 2.5.2.85 §3), for the evidence pack.

Each probe exercises the *installed* programs from outside: enrolment and gate verification run as the installed
`cardbound` command in a scratch station home, on a virtual card, watched by strace; the code check reads the
installed packages' source files; the worker check starts the installed sandboxed worker and tries to write.
Nothing here imports `enrol` or `verify`. Tests plant violations by giving the subprocesses another environment
(`ProbeConfig.env`, e.g. a PYTHONPATH with a patched package), exactly as a modified installation would look.

A probe that cannot run says NOT RUN and why; it is never counted as a pass.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit import AuditLog, BiometricContentError, ConfigChanged, EventValidationError, EvidenceProbe, atrest
from iso27001_evidence import codecheck, writewatch

PASS, FAIL, NOT_RUN = "PASS", "FAIL", "NOT RUN"
LOCK_FILE = Path(os.environ.get("CARDBOUND_PCSC_LOCK", "/tmp/cardbound-pcsc.lock"))  # noqa: S108 - the host-wide lock
# Set by the process that holds LOCK_FILE (the pytest `pcscd` fixture) to its pid: a probe started by it (or by
# one of its children) must not wait for the lock its own ancestor holds.
LOCK_HOLDER_ENV = "CARDBOUND_PCSC_LOCK_HOLDER"
PCSCD = "/usr/sbin/pcscd"
PACKAGES = ("biometric", "enrol", "verify", "card", "audit", "cardbound")
# §3 condition(s) each probe evidences
CONDITIONS: dict[str, tuple[int, ...]] = {
    "write-watch": (1, 4),
    "delete-source": (1,),
    "storage-scan": (1, 3, 4),
    "no-one-to-many": (2,),
    "worker-cannot-write": (1, 4),
    "audit-schema": (3,),
}
PROBES = tuple(CONDITIONS)
# a made-up national register number (valid check digits, nobody's): only its pseudonym reaches the card
PROBE_NATIONAL_NUMBER = "85.07.30-033.28"


@dataclass
class ProbeResult:
    probe: str
    result: str  # PASS | FAIL | NOT RUN
    method: str
    inputs: dict[str, str]
    findings: list[str]
    started: str
    duration_s: float
    software_version: str
    conditions: tuple[int, ...] = ()
    audit_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["conditions"] = list(self.conditions)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ProbeResult:
        return cls(**{**d, "conditions": tuple(d.get("conditions", ()))})


@dataclass
class ProbeRun:
    run_id: str
    started: str
    software_version: str
    node_id: str
    results: list[ProbeResult]

    @property
    def conform(self) -> bool:
        """True only when every probe of PROBES ran and passed (a partial run is never conforming)."""
        passed = {r.probe for r in self.results if r.result == PASS}
        return passed >= set(PROBES) and all(r.result == PASS for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started": self.started, "software_version": self.software_version,
                "node_id": self.node_id, "conform": self.conform, "results": [r.to_json() for r in self.results]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ProbeRun:
        return cls(d["run_id"], d["started"], d["software_version"], d["node_id"],
                   [ProbeResult.from_json(r) for r in d["results"]])


@dataclass
class ProbeConfig:
    home: Path  # the deployment's station home: scanned, and the probe events are appended to its audit log
    node_id: str
    cardbound: list[str]  # how to run the installed command
    python: Path  # the installed interpreter (worker check, package locations)
    enrol_photo: Path | None = None
    live_photo: Path | None = None
    env: dict[str, str] | None = None  # environment of every subprocess (default: ours)
    dsn: str | None = None  # central PostgreSQL store, when configured
    scan_extra: list[Path] = field(default_factory=list)
    only: set[str] | None = None
    reader: int = 0
    timeout_s: float = 180.0
    say: Callable[[str], None] = lambda _t: None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _Ctx:
    """What the card-driving probe leaves for the probes that examine its results."""

    scratch: Path | None = None
    written: set[Path] = field(default_factory=set)
    source: Path | None = None
    source_removed_by_trace: bool = False
    enrolled: bool = False
    enrol_error: str | None = None


class _NotRun(Exception):
    pass


# ------------------------------------------------------------------------------------------------ helpers


def _env(cfg: ProbeConfig, **extra: str) -> dict[str, str]:
    env = dict(cfg.env if cfg.env is not None else os.environ)
    env.pop("CARDBOUND_HOME", None)
    env.update(extra)
    return env


def software_version(cfg: ProbeConfig) -> str:
    try:
        out = subprocess.run([*cfg.cardbound, "--version"], capture_output=True, text=True, timeout=60,
                             env=_env(cfg), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    return (out.stdout.strip() or out.stderr.strip() or "unknown")[:100]


def _holds_lock_in_ancestry() -> bool:
    holder = os.environ.get(LOCK_HOLDER_ENV, "")
    if not holder.isdigit():
        return False
    pid = os.getpid()
    for _ in range(64):
        if pid == int(holder):
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: ppid (after the parenthesised comm)
        if pid <= 1:
            return False
    return False


def _inherited_lock() -> bool:
    """True when we were started as `flock /tmp/cardbound-pcsc.lock cardbound ...`: flock(1) hands its locked
    descriptor to the command, and locking that same open file again succeeds at once (a new open of the file
    would wait for ourselves forever)."""
    try:
        fds = list(Path("/proc/self/fd").iterdir())
    except OSError:
        return False
    for entry in fds:
        try:
            if Path(os.readlink(entry)) != LOCK_FILE.absolute():
                continue
            fcntl.flock(int(entry.name), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except (OSError, ValueError):
            continue
    return False


@contextlib.contextmanager
def readers_lock(say: Callable[[str], None], timeout_s: float = 900.0) -> Iterator[None]:
    """Hold the host-wide virtual readers lock (as `flock /tmp/cardbound-pcsc.lock` does) unless an ancestor
    process (the pytest fixture) already holds it for us."""
    if _holds_lock_in_ancestry() or _inherited_lock():
        yield
        return
    fd = os.open(LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        end = time.monotonic() + timeout_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    say(f"waiting for the virtual card readers ({LOCK_FILE} is held by another session)")
                    told = True
                if time.monotonic() > end:
                    raise _NotRun(f"virtual readers busy: {LOCK_FILE} held for more than {timeout_s:.0f} s") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _pcscd_running() -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "pcscd":
                    return True
    return False


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # our own child, by PID
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _run(cfg: ProbeConfig, args: list[str], env: Mapping[str, str], *, cwd: Path,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([*cfg.cardbound, *args], env=dict(env), cwd=cwd, input=stdin, capture_output=True,
                              text=True, timeout=cfg.timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _NotRun(f"`cardbound {' '.join(args[:3])}` could not run: {exc}") from exc


def _checked(cfg: ProbeConfig, args: list[str], env: Mapping[str, str], *, cwd: Path,
             stdin: str | None = None) -> str:
    p = _run(cfg, args, env, cwd=cwd, stdin=stdin)
    if p.returncode != 0:
        raise _NotRun(f"set-up step `cardbound {' '.join(a for a in args if '/' not in a)}` failed "
                      f"(exit {p.returncode}): {p.stderr.strip()[-300:]}")
    return p.stdout


def _wait_reader(cfg: ProbeConfig, env: Mapping[str, str], cwd: Path) -> None:
    name = f"Virtual PCD 00 {cfg.reader:02d}"
    end = time.monotonic() + 15
    while time.monotonic() < end:
        p = _run(cfg, ["card", "readers"], env, cwd=cwd)
        if name in p.stdout:
            return
        time.sleep(0.3)
    raise _NotRun(f"PC/SC reader {name!r} did not appear (pcscd with vsmartcard-vpcd)")


# ------------------------------------------------------------------------------------------------ probes


def _probe_write_watch(cfg: ProbeConfig, ctx: _Ctx, inputs: dict[str, str]) -> list[str]:
    if cfg.enrol_photo is None or cfg.live_photo is None:
        raise _NotRun("no probe photos given (--photo / --live, or the shared faces folder)")
    for p in (cfg.enrol_photo, cfg.live_photo):
        if not p.is_file():
            raise _NotRun(f"probe photo {p} not found")
    if shutil.which("strace") is None:
        raise _NotRun("strace is not installed (Debian package strace)")
    inputs.update({"enrol photo": cfg.enrol_photo.name, "live photo": cfg.live_photo.name,
                   "card": f"virtual PIV card in 'Virtual PCD 00 {cfg.reader:02d}'",
                   "holder": "pseudonym of a made-up national number"})
    scratch = ctx.scratch = Path(tempfile.mkdtemp(prefix="cardbound-probe-"))
    home, tmp, user = scratch / "home", scratch / "tmp", scratch / "user"
    for d in (home, tmp, user):
        d.mkdir(mode=0o700)
    env = _env(cfg, TMPDIR=str(tmp), HOME=str(user))
    if not env.get("CARDBOUND_KEY_PASSPHRASE_FILE") and not env.get("CARDBOUND_KEY_PASSPHRASE"):
        # private keys are encrypted at rest (issue 11): the probe's own throw-away passphrase, 0600
        secret = scratch / "key-passphrase"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as secret_out:
            secret_out.write(secrets.token_urlsafe(24) + "\n")
        env["CARDBOUND_KEY_PASSPHRASE_FILE"] = str(secret)
    source = ctx.source = scratch / ("source" + cfg.enrol_photo.suffix.lower())
    shutil.copyfile(cfg.enrol_photo, source)  # the "photo file" the desk receives; --delete-source destroys it
    os.chmod(source, 0o600)
    findings: list[str] = []
    _checked(cfg, ["--home", str(home), "keys", "init"], env, cwd=scratch)
    _checked(cfg, ["--home", str(home), "keys", "issue-station", "probe-desk"], env, cwd=scratch)
    # a new gate runs at ISPS level 3 (fail closed) until the duty officer sets the level, audited
    _checked(cfg, ["--home", str(home), "gate", "level", "1", "--site", "probe-site", "--operator",
                   "evidence-probe"], env, cwd=scratch)
    # the desk and the gate run on their own bundles, never on the keystore (issue 11)
    _checked(cfg, ["--home", str(home), "keys", "export-desk", "probe-desk", str(home / "desk-keys")], env, cwd=scratch)
    _checked(cfg, ["--home", str(home), "keys", "export-gate", "probe-gate", str(home / "gate-keys")], env, cwd=scratch)
    ref = _checked(cfg, ["--home", str(home), "gate", "pseudonymise", "--new-key"], env, cwd=scratch,
                   stdin=PROBE_NATIONAL_NUMBER + "\n").strip().splitlines()[-1]
    pcscd: subprocess.Popen[bytes] | None = None
    card: subprocess.Popen[bytes] | None = None
    with readers_lock(cfg.say):
        try:
            if not _pcscd_running():
                if not Path(PCSCD).exists():
                    raise _NotRun("pcscd is not installed")
                pcscd = subprocess.Popen([PCSCD, "--foreground"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _wait_reader(cfg, env, scratch)
            card = subprocess.Popen([*cfg.cardbound, "card", "virtual", "--image", str(scratch / "card.json"),
                                     "--reader", str(cfg.reader)], env=env, cwd=scratch, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            valid = f"{datetime.now(UTC).year + 1}-12-31"
            # card issuance at the key officer (the CA signs the card's 9E certificate; a desk cannot)
            _checked(cfg, ["--home", str(home), "keys", "personalise-card", "--reader", str(cfg.reader),
                           "--timeout", "20"], env, cwd=scratch)
            cfg.say("probe: enrolment under strace (installed `cardbound enrol`)")
            enrolled = writewatch.run(
                [*cfg.cardbound, "--home", str(home), "enrol", "--reader", str(cfg.reader), "--photo", str(source),
                 "--holder-ref", ref, "--category", "regular", "--valid-until", valid, "--delete-source",
                 "--station", "probe-desk", "--operator", "evidence-probe", "--card-timeout", "20", "--json"],
                trace_file=scratch / "enrol.trace", env=env, cwd=scratch, timeout=cfg.timeout_s)
            result = _last_json(enrolled.stdout)
            ctx.enrolled = enrolled.returncode == 0 and result.get("result") == "enrolled"
            if not ctx.enrolled:
                ctx.enrol_error = f"exit {enrolled.returncode}: {enrolled.stderr.strip()[-200:] or result}"
                findings.append(f"enrolment did not complete ({ctx.enrol_error})")
            cfg.say("probe: gate verification under strace (installed `cardbound verify --once`)")
            verified = writewatch.run(
                [*cfg.cardbound, "--home", str(home), "verify", "--once", "--reader", str(cfg.reader), "--photo",
                 str(cfg.live_photo), "--gate-id", "probe-gate", "--card-timeout", "20"],
                trace_file=scratch / "verify.trace", env=env, cwd=scratch, timeout=cfg.timeout_s)
            decision = _last_json(verified.stdout)
            inputs["gate decision"] = f"{decision.get('decision')} ({decision.get('reason')})"
            if ctx.enrolled and decision.get("decision") != "accept":
                findings.append(f"the genuine holder was not accepted: {decision.get('reason')} "
                                f"{verified.stderr.strip()[-200:]}")
        except writewatch.WatchUnavailable as exc:
            raise _NotRun(str(exc)) from exc
        finally:
            _stop(card)
            _stop(pcscd)
    ctx.written = enrolled.written | verified.written
    ctx.source_removed_by_trace = source in enrolled.removed
    # the station writes its audit log, its keystore and its own configuration (node id); all are scanned below
    allowed = (home / "audit", home / "keys", home / "config", Path("/dev"), Path("/proc"))
    unexpected = sorted(p for p in ctx.written
                        if p != source and not any(p == a or a in p.parents for a in allowed)
                        and not (p.suffix == ".pyc" and "__pycache__" in p.parts))
    inputs["files written"] = str(len(ctx.written))
    for p in unexpected:
        findings.append(f"unexpected file write by the enrolment or the gate: {p}")
    existing = [p for p in ctx.written if p.is_file() and p != source]
    for f in atrest.scan([home, tmp, user, *existing]):
        findings.append(f"biometric-looking data left behind: {f}")
    return findings


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return {}


def _probe_delete_source(cfg: ProbeConfig, ctx: _Ctx, inputs: dict[str, str]) -> list[str]:
    if ctx.source is None:
        raise _NotRun("needs the write-watch probe's enrolment, which did not run")
    if not ctx.enrolled:
        raise _NotRun(f"the enrolment did not complete ({ctx.enrol_error}): --delete-source acts after success")
    inputs["source file"] = ctx.source.name
    findings = []
    if ctx.source.exists():
        findings.append(f"source photo still present after `enrol --delete-source`: {ctx.source}")
    if not ctx.source_removed_by_trace:
        findings.append("the traced enrolment did not unlink the source photo itself")
    return findings


def _probe_storage_scan(cfg: ProbeConfig, ctx: _Ctx, inputs: dict[str, str]) -> list[str]:
    roots = [cfg.home, *cfg.scan_extra]
    if ctx.scratch is not None:
        roots.append(ctx.scratch)
    outside = sorted(p for p in ctx.written if p.is_file() and not any(r in p.parents for r in roots))
    inputs["station home"] = str(cfg.home)
    inputs["audit database"] = str(cfg.home / "audit" / "audit.sqlite3")
    inputs["temporary directories"] = ("the probe's TMPDIR and HOME; system temp dirs: every file the traced "
                                       "processes wrote there")
    inputs["extra paths"] = ", ".join(map(str, cfg.scan_extra)) or "none"
    findings = [str(f) for f in atrest.scan([*roots, *outside], exclude=[ctx.source] if ctx.source else [])]
    files = sum(1 for _ in atrest.iter_files([*roots, *outside]))
    if cfg.dsn:
        from audit.central import export_central

        with tempfile.TemporaryDirectory(prefix="cardbound-central-") as d:
            out = Path(d) / "central.jsonl"
            try:
                export_central(cfg.dsn, out)
            except Exception as exc:  # a store that cannot be read is not a pass
                raise _NotRun(f"central store not readable: {type(exc).__name__}: {exc}") from exc
            findings += [f"central store: {f.kind} at byte {f.offset}" for f in atrest.scan([out])]
        inputs["central store"] = "PostgreSQL (all nodes, exported and scanned)"
    else:
        inputs["central store"] = "non configuré / not configured"
    inputs["files scanned"] = str(files)
    return findings


def _installed_packages(cfg: ProbeConfig, names: tuple[str, ...]) -> dict[str, str]:
    script = ("import importlib.util, json, sys\n"
              "out = {}\n"
              "for n in sys.argv[1:]:\n"
              "    s = importlib.util.find_spec(n)\n"
              "    if s and s.submodule_search_locations: out[n] = list(s.submodule_search_locations)[0]\n"
              "print(json.dumps(out))\n")
    p = subprocess.run([str(cfg.python), "-c", script, *names], capture_output=True, text=True, env=_env(cfg),
                       timeout=60, check=False, cwd=tempfile.gettempdir())
    if p.returncode != 0:
        raise _NotRun(f"cannot locate the installed packages: {p.stderr.strip()[-200:]}")
    found: dict[str, str] = json.loads(p.stdout)
    return found


def _probe_no_one_to_many(cfg: ProbeConfig, ctx: _Ctx, inputs: dict[str, str]) -> list[str]:
    located = _installed_packages(cfg, ("biometric", "verify", "enrol", "card"))
    missing = {"biometric", "verify"} - set(located)
    if missing:
        raise _NotRun(f"installed packages not found: {', '.join(sorted(missing))}")
    findings, files = codecheck.check(Path(p) for p in located.values())
    inputs["code read"] = f"{files} Python files of the installed packages {', '.join(sorted(located))}"
    inputs["locations"] = "; ".join(f"{k}={v}" for k, v in sorted(located.items()))
    return [str(f) for f in findings]


_WORKER_SCRIPT = r"""
import json, os, sys
from biometric.isolation import SandboxedWorker, WRITE_METHODS
d = sys.argv[1]
existing = {"append", "overwrite", "truncate", "remove", "rename", "mmap"}
out = {"methods": {}}
with SandboxedWorker(diagnostics=True) as w:
    sb = w.sandbox
    out["sandbox"] = {"fsize": list(sb.fsize_limit), "core": list(sb.core_limit), "dumpable": sb.dumpable,
                      "memory_locked": sb.memory_locked}
    for m in WRITE_METHODS:
        target = os.path.join(d, m)
        if m in existing:
            with open(target, "wb") as f:
                f.write(b"original")
        meta, _ = w.call("diag.try_write", m, target, timeout_s=30)
        out["methods"][m] = meta.get("outcome", "?")
print(json.dumps(out))
"""


def _probe_worker_cannot_write(cfg: ProbeConfig, ctx: _Ctx, inputs: dict[str, str]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cardbound-worker-probe-") as d:
        try:
            p = subprocess.run([str(cfg.python), "-c", _WORKER_SCRIPT, d], capture_output=True, text=True,
                               env=_env(cfg), timeout=cfg.timeout_s, check=False, cwd=d)
        except subprocess.TimeoutExpired as exc:
            raise _NotRun("the installed worker did not answer in time") from exc
        if p.returncode != 0:
            raise _NotRun(f"cannot start the installed sandboxed worker: {p.stderr.strip()[-300:]}")
        report = _last_json(p.stdout)
        methods: dict[str, str] = report.get("methods", {})
        inputs["write attempts"] = ", ".join(sorted(methods))
        sb = report.get("sandbox", {})
        inputs["sandbox"] = (f"RLIMIT_FSIZE {sb.get('fsize')}, RLIMIT_CORE {sb.get('core')}, "
                             f"dumpable {sb.get('dumpable')}, memory locked {sb.get('memory_locked')}")
        findings = []
        if sb.get("fsize") != [0, 0]:
            findings.append(f"worker file size limit is {sb.get('fsize')}, not 0")
        if sb.get("core") != [0, 0]:
            findings.append(f"worker core limit is {sb.get('core')}, not 0")
        # judge by what is on disk, not by what the worker says
        for m in methods:
            target = Path(d, m)
            if m in {"append", "overwrite", "truncate", "mmap"}:
                if not target.exists() or target.read_bytes() != b"original":
                    findings.append(f"worker changed an existing file ({m})")
            elif m == "remove":
                if not target.exists():
                    findings.append("worker removed a file")
            elif m == "rename":
                if not target.exists():
                    findings.append("worker renamed a file")
            elif target.exists() and target.stat().st_size > 0:
                findings.append(f"worker wrote a file ({m}): {target.stat().st_size} bytes")
        empty = [m for m in methods if m not in {"append", "overwrite", "truncate", "mmap", "remove", "rename"}
                 and Path(d, m).exists() and Path(d, m).stat().st_size == 0]
        if empty:
            inputs["known limit"] = (f"an empty file can be created from C code ({', '.join(empty)}): no byte can "
                                     f"be written into it (RLIMIT_FSIZE=0)")
        return findings


def _probe_audit_schema(cfg: ProbeConfig, ctx: _Ctx, inputs: dict[str, str]) -> list[str]:
    template = bytes(secrets.token_bytes(512))
    payloads: dict[str, object] = {
        "512-byte template (bytes)": template,
        "template as hex": template.hex(),
        "JPEG header in text": "\xff\xd8\xff\xe0 JFIF",
        "base64 JPEG": "/9j/4AAQSkZJRgABAQAAAQABAAD",
        "data: URI": "data:image/png;base64,iVBORw0KGgo",
        "descriptor as text": ", ".join(f"{v:.4f}" for v in [0.1, -0.05, 0.07, 0.02, -0.11, 0.09, 0.03, -0.02]),
        "list of floats": [0.1] * 128,
    }
    inputs["payloads tried"] = "; ".join(payloads)
    findings = []
    with tempfile.TemporaryDirectory(prefix="cardbound-audit-probe-") as d:
        log = AuditLog.open(Path(d) / "audit" / "audit.sqlite3", "probe", key_file=Path(d) / "probe.key")
        try:
            for label, value in payloads.items():
                try:
                    ConfigChanged(setting="probe", new_value=value)  # type: ignore[arg-type]
                    findings.append(f"the event constructor accepted {label}")
                except (BiometricContentError, EventValidationError):
                    pass
                forged = object.__new__(ConfigChanged)  # bypass the constructor: the write must still refuse
                object.__setattr__(forged, "setting", "probe")
                object.__setattr__(forged, "new_value", value)
                object.__setattr__(forged, "old_value", None)
                object.__setattr__(forged, "operator_id", None)
                try:
                    log.append(forged)
                    findings.append(f"the audit log stored {label}")
                except (BiometricContentError, EventValidationError):
                    pass
            if log.size:
                findings.append(f"{log.size} refused event(s) left entries in the log")
        finally:
            log.close()
    return findings


_PROBES: dict[str, Callable[[ProbeConfig, _Ctx, dict[str, str]], list[str]]] = {
    "write-watch": _probe_write_watch,
    "delete-source": _probe_delete_source,
    "storage-scan": _probe_storage_scan,
    "no-one-to-many": _probe_no_one_to_many,
    "worker-cannot-write": _probe_worker_cannot_write,
    "audit-schema": _probe_audit_schema,
}
METHODS: dict[str, str] = {
    "write-watch": "real enrolment (installed `cardbound enrol --photo --delete-source`) and gate verification "
                   "(`cardbound verify --once`) on a virtual PIV card in a scratch station home, every process "
                   "traced with strace (open/creat/rename/link/truncate/unlink); every file written must be the "
                   "station's audit log, keystore or configuration, and no written file may hold image bytes or "
                   "descriptor-like vectors",
    "delete-source": "after the traced enrolment with --delete-source, the source photo must be gone and the "
                     "enrolment process itself must have unlinked it",
    "storage-scan": "audit.atrest scan (image signatures anywhere in a file; 128 consecutive float32/float64 "
                    "values of descriptor norm) of the station home (keys, audit database, configuration), the "
                    "probe's temporary directories, every file the traced processes wrote, and the central store "
                    "when configured",
    "no-one-to-many": "static analysis (Python ast) of the installed biometric, verify, enrol and card packages: "
                      "no identification/search function, no parameter taking a collection of templates, no call "
                      "to face_recognition's 1:N helpers, no comparison in a loop over templates",
    "worker-cannot-write": "start the installed sandboxed biometric worker and have it try to write, append, "
                           "overwrite, truncate, remove, rename, mmap and write through libc; the files are then "
                           "checked on disk",
    "audit-schema": "try to record a template, its hex, image magic, a base64 JPEG, a data: URI and a descriptor "
                    "as text in an audit event, through the constructor and bypassing it; every write must be "
                    "refused and the scratch log stay empty",
}


def run_probes(cfg: ProbeConfig) -> ProbeRun:
    """Run the probes (all, or `cfg.only`), append one `evidence.probe` audit event each to the station's log."""
    version = software_version(cfg)
    run = ProbeRun(secrets.token_hex(8), _now(), version, cfg.node_id, [])
    ctx = _Ctx()
    wanted = [p for p in PROBES if cfg.only is None or p in cfg.only]
    if {"delete-source"} & set(wanted) and "write-watch" not in wanted:
        wanted.insert(0, "write-watch")  # delete-source examines its enrolment
    try:
        for name in PROBES:
            if name not in wanted:  # listed anyway: a pack must show what was not examined
                run.results.append(ProbeResult(name, NOT_RUN, METHODS[name], {},
                                               ["not selected for this run (--only)"], _now(), 0.0, version,
                                               CONDITIONS[name]))
                continue
            cfg.say(f"probe {name} ...")
            started, t0 = _now(), time.monotonic()
            inputs: dict[str, str] = {}
            try:
                findings = _PROBES[name](cfg, ctx, inputs)
                result = FAIL if findings else PASS
            except _NotRun as exc:
                findings, result = [str(exc)], NOT_RUN
            except Exception as exc:  # a probe that breaks proves nothing: report it, never pass it
                findings, result = [f"probe error: {type(exc).__name__}: {exc}"], NOT_RUN
            run.results.append(ProbeResult(name, result, METHODS[name], inputs, findings, started,
                                           round(time.monotonic() - t0, 2), version, CONDITIONS[name]))
            cfg.say(f"probe {name}: {result}" + (f" — {findings[0]}" if findings else ""))
    finally:
        if ctx.scratch is not None:
            shutil.rmtree(ctx.scratch, ignore_errors=True)
    _record(cfg, run)
    return run


def _record(cfg: ProbeConfig, run: ProbeRun) -> None:
    with AuditLog.open_station(cfg.home, cfg.node_id) as log:
        for r in run.results:
            r.audit_index = log.append(EvidenceProbe(
                node_id=cfg.node_id, probe=r.probe, result=r.result.lower().replace(" ", "-"),
                findings=len(r.findings) if r.result != PASS else 0, software_version=r.software_version[:200],
                run_id=run.run_id))


def default_command() -> list[str]:
    """The installed `cardbound` next to this interpreter (a venv or the system), else on PATH."""
    beside = Path(sys.executable).parent / "cardbound"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cardbound")
    return [found] if found else [sys.executable, "-m", "cardbound.cli"]

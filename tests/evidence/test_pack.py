"""The evidence pack (issue 14), built once for the module from a demo-like deployment through the installed
`cardbound` command: probes on the real system (virtual card, strace), report FR/NL/EN + PDF, SoA, OSCAL, SBOM,
signed manifest; then its verification with `cardbound evidence verify` and with standard tools only."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audit import atrest
from cardbound.home import Home
from iso27001_evidence import oscal, pack, probes
from iso27001_evidence.sources import Period

REPO = Path(__file__).resolve().parents[2]
CARDBOUND = [str(Path(sys.executable).parent / "cardbound")]
PERIOD = "2026-01-01..2027-12-31"
LEGAL_TERMS = ("responsable du traitement", "sous-traitant", "reconnaissance", "modèle biométrique",
               "données biométriques brutes")


def _cb(home: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*CARDBOUND, "--home", str(home), *args], capture_output=True, text=True, timeout=600,
                       env=env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def built(pcscd: object, tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> tuple[Path, Path, dict]:
    """A deployment home (keystore + audit log) and the pack built from it in one command."""
    root = tmp_path_factory.mktemp("evidence")
    home = root / "home"
    # a demo deployment: keys, two enrolments, seven gate decisions, all in the station's audit log
    demo = _cb(home, "demo", "--faces", str(faces_dir), check=False)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "audit.json").write_text('{"retention_days": 365}')
    out = root / "pack"
    # one command, as the auditor would run it; pytest's pcscd fixture holds the readers lock for us
    p = _cb(home, "evidence", "build", "--period", PERIOD, "--out", str(out), "--faces", str(faces_dir), check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("CONFORME"), p.stdout + p.stderr
    return home, out, json.loads((out / "evidence" / "probes.json").read_text())


def test_every_probe_ran_on_the_installed_system_and_passed(built: tuple[Path, Path, dict]) -> None:
    home, out, run = built
    results = {r["probe"]: r for r in run["results"]}
    assert set(results) == set(probes.PROBES)
    assert {r["result"] for r in results.values()} == {"PASS"}, [r["findings"] for r in results.values()]
    ww = results["write-watch"]
    assert ww["inputs"]["gate decision"] == "accept (ACCEPTED)"  # a real enrolment and a real 1:1 acceptance
    assert int(ww["inputs"]["files written"]) > 0  # strace did see the station write its audit log
    assert all(r["software_version"].startswith("cardbound ") for r in results.values())
    # each probe appended an audit event, whose index the result records
    verified = _cb(home, "audit", "verify").stdout
    assert "OK" in verified
    assert all(isinstance(r["audit_index"], int) for r in results.values())


def test_report_in_french_with_dutch_and_english_and_sections(built: tuple[Path, Path, dict]) -> None:
    _home, out, _run = built
    fr = html.unescape((out / "index.html").read_text())
    for term in LEGAL_TERMS:
        assert term in fr, term
    assert "NON CONFORME" not in fr and ">CONFORME<" in fr
    for heading in ("Article 2.5.2.85, § 3", "2.5.2.89", "A.8.24", "A.8.15", "Article 2.5.2.90",
                    "Déclaration d'applicabilité"):
        assert heading in fr, heading
    assert "non configuré" in fr  # the desk's operator inventory is not there yet, and the pack says so
    nl = html.unescape((out / "index.nl.html").read_text())
    assert 'lang="nl"' in nl and "NIET CONFORM" not in nl and "Echte inschrijving" in nl
    assert "Statement of Applicability" in (out / "index.en.html").read_text()
    text = subprocess.run(["pdftotext", "-layout", str(out / "rapport.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "CONFORME" in text and "Déclaration d'applicabilité" in text and "Mécanisme" in text


def test_statement_of_applicability_links_measured_controls(built: tuple[Path, Path, dict]) -> None:
    _home, out, _run = built
    controls = json.loads((out / "evidence" / "soa.json").read_text())["controls"]
    annex_a = [c for c in controls if c["family"] == "annex_a"]
    assert len(annex_a) == 93 and annex_a[0]["id"] == "5.1" and annex_a[-1]["id"] == "8.34"
    assert len([c for c in controls if c["family"] == "iso27701"]) == 18
    by_id = {c["id"]: c for c in controls}
    for cid in ("5.15", "5.17", "5.34", "8.5", "8.10", "8.15", "8.24"):
        assert by_id[cid]["evidence"], cid
        for f in by_id[cid]["evidence"]:
            assert (out / f).is_file(), f
    assert by_id["5.34"]["measured"] == "PASS"
    assert by_id["8.24"]["title"] == "Use of cryptography"


def test_oscal_validates_with_trestle_and_a_broken_one_does_not(built: tuple[Path, Path, dict]) -> None:
    _home, out, _run = built
    text = (out / "oscal" / "assessment-results.json").read_text()
    oscal.validate_file(text)
    doc = json.loads(text)
    assert len(doc["assessment-results"]["results"][0]["observations"]) == len(probes.PROBES)
    del doc["assessment-results"]["metadata"]["oscal-version"]
    with pytest.raises(Exception, match="oscal.version|Field required"):
        oscal.validate_file(json.dumps(doc))


def test_sbom_lists_the_environment(built: tuple[Path, Path, dict]) -> None:
    _home, out, _run = built
    sbom = json.loads((out / "sbom" / "cyclonedx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    names = {c["name"].lower() for c in sbom["components"]}
    assert {"cryptography", "weasyprint", "compliance-trestle", "pyscard"} <= names
    # dlib is built by setup from the upstream sdist plus our patches: the SBOM shows its pedigree
    dlib = next(c for c in sbom["components"] if c["name"].lower() == "dlib")
    ancestor = dlib["pedigree"]["ancestors"][0]
    assert (ancestor["name"], ancestor["purl"]) == ("dlib", f"pkg:pypi/dlib@{dlib['version']}")
    assert len(ancestor["hashes"][0]["content"]) == 64
    patches = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "scripts" / "dlib-patches").glob("*.patch"))
    assert [p["diff"]["url"] for p in dlib["pedigree"]["patches"]] == [f"scripts/dlib-patches/{n}" for n in patches]


def test_nothing_in_the_pack_looks_biometric(built: tuple[Path, Path, dict]) -> None:
    _home, out, _run = built
    assert atrest.scan([out]) == []


def _tools(pack_dir: Path) -> dict[str, int]:
    """The French guide's standard-tool procedure; return code of each step."""
    sh = {
        "signature": "openssl dgst -sha256 -verify evidence-key.pub.pem -signature SHA256SUMS.sig SHA256SUMS",
        "hashes": "sha256sum --strict --quiet -c SHA256SUMS",
        "files": "find . -type f ! -name SHA256SUMS ! -name SHA256SUMS.sig | sed 's|^\\./||' | LC_ALL=C sort "
                 "| diff - <(cut -c67- SHA256SUMS | LC_ALL=C sort)",
    }
    return {k: subprocess.run(["bash", "-c", v], cwd=pack_dir, capture_output=True).returncode for k, v in sh.items()}


def _verify(pack_dir: Path) -> tuple[int, str]:
    p = subprocess.run([*CARDBOUND, "evidence", "verify", str(pack_dir)], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout


def test_intact_pack_verifies_with_cardbound_and_standard_tools(built: tuple[Path, Path, dict]) -> None:
    _home, out, _run = built
    rc, text = _verify(out)
    assert rc == 0, text
    assert "audit checkpoints:" in text and "rows verified" in text
    assert _tools(out) == {"signature": 0, "hashes": 0, "files": 0}


@pytest.mark.parametrize("victim", ["rapport.pdf", "evidence/probes.json", "SHA256SUMS", "evidence-key.pub.pem"])
def test_a_changed_byte_is_reported(built: tuple[Path, Path, dict], tmp_path: Path, victim: str) -> None:
    _home, out, _run = built
    copy = tmp_path / "pack"
    shutil.copytree(out, copy)
    f = copy / victim
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    rc, text = _verify(copy)
    assert rc != 0
    tools = _tools(copy)
    if victim == "SHA256SUMS":
        assert "BAD-SIGNATURE" in text and tools["signature"] != 0
    elif victim == "evidence-key.pub.pem":
        assert ("BAD-SIGNATURE" in text or "BAD-KEY" in text) and f"MODIFIED: {victim}" in text
        assert tools["signature"] != 0 and tools["hashes"] != 0
    else:
        assert f"MODIFIED: {victim}" in text and tools["hashes"] != 0 and tools["signature"] == 0


def test_removed_and_added_files_are_reported(built: tuple[Path, Path, dict], tmp_path: Path) -> None:
    _home, out, _run = built
    removed = tmp_path / "removed"
    shutil.copytree(out, removed)
    (removed / "evidence" / "keys.json").unlink()
    rc, text = _verify(removed)
    assert rc != 0 and "REMOVED: evidence/keys.json" in text
    assert _tools(removed)["hashes"] != 0 and _tools(removed)["files"] != 0
    added = tmp_path / "added"
    shutil.copytree(out, added)
    (added / "evidence" / "extra.txt").write_text("not part of the pack\n")
    rc, text = _verify(added)
    assert rc != 0 and "ADDED: evidence/extra.txt" in text
    tools = _tools(added)
    assert tools["hashes"] == 0 and tools["signature"] == 0 and tools["files"] != 0  # only the listing step sees it


def test_a_forged_audit_checkpoint_inside_is_reported(built: tuple[Path, Path, dict], tmp_path: Path) -> None:
    _home, out, _run = built
    copy = tmp_path / "pack"
    shutil.copytree(out, copy)
    cps = copy / "evidence" / "audit-checkpoints.json"
    data = json.loads(cps.read_text())
    note = data["checkpoints"][-1]["note"].split("\n")
    note[1] = str(int(note[1]) + 1)  # claim a larger tree under the same signature
    data["checkpoints"][-1]["note"] = "\n".join(note)
    cps.write_text(json.dumps(data))
    r = pack.verify(copy)
    assert any(f.startswith("CHECKPOINT:") for f in r.findings), r.findings
    assert any(f.startswith("MODIFIED: evidence/audit-checkpoints.json") for f in r.findings), r.findings


# ------------------------------------------------------------------------------------------- planted violations


def _planted_env(tmp: Path, sitecustomize: str) -> dict[str, str]:
    d = tmp / "planted"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(sitecustomize)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(d), env.get("PYTHONPATH")]))
    return env


def _run_planted(home: Path, faces: Path, only: set[str], env: dict[str, str] | None, tmp: Path) -> tuple[dict, str]:
    photos = faces / "portraits" / "face_recognition" / "obama"
    node = Home(home).node_id
    cfg = probes.ProbeConfig(home=home, node_id=node, cardbound=CARDBOUND, python=Path(sys.executable),
                             enrol_photo=photos / "obama.jpg", live_photo=photos / "obama2.jpg", env=env, only=only)
    run = probes.run_probes(cfg)
    out = tmp / "pack"
    pack.build(pack.BuildConfig(home=home, node_id=node, period=Period.parse(PERIOD), out=out,
                                cardbound=CARDBOUND, python=Path(sys.executable), run=run, sbom=False))
    first_page = subprocess.run(["pdftotext", "-l", "1", str(out / "rapport.pdf"), "-"], capture_output=True,
                                text=True, check=True).stdout
    return {r.probe: r for r in run.results}, first_page


@pytest.fixture
def fresh_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    _cb(home, "keys", "init")
    return home


def test_planted_enrolment_that_writes_the_sample_to_disk(pcscd: object, fresh_home: Path, tmp_path: Path,
                                                          faces_dir: Path) -> None:
    env = _planted_env(tmp_path, (
        "import os, shutil, tempfile\n"
        "import biometric.capture as c\n"
        "_orig = c.SampleSource.photos.__func__\n"
        "def photos(cls, *paths, **kw):\n"
        "    for i, p in enumerate(paths):\n"
        "        shutil.copyfile(p, os.path.join(tempfile.gettempdir(), f'cardbound-sample-{i}.jpg'))\n"
        "    return _orig(cls, *paths, **kw)\n"
        "c.SampleSource.photos = classmethod(photos)\n"))
    results, first_page = _run_planted(fresh_home, faces_dir, {"write-watch"}, env, tmp_path)
    ww = results["write-watch"]
    assert ww.result == probes.FAIL
    assert any("unexpected file write" in f and "cardbound-sample-0.jpg" in f for f in ww.findings), ww.findings
    assert any("image:jpeg" in f for f in ww.findings), ww.findings
    assert "NON CONFORME" in first_page


def test_planted_template_copy_left_in_the_station_home(fresh_home: Path, tmp_path: Path, faces_dir: Path) -> None:
    import numpy as np

    v = np.random.default_rng(7).normal(size=128).astype("<f4")
    (fresh_home / "cache").mkdir()
    (fresh_home / "cache" / "last-template.bin").write_bytes(b"hdr!" + (v / np.linalg.norm(v)).tobytes())
    results, first_page = _run_planted(fresh_home, faces_dir, {"storage-scan"}, None, tmp_path)
    scan = results["storage-scan"]
    assert scan.result == probes.FAIL
    assert any("last-template.bin" in f and "descriptor:float32" in f for f in scan.findings), scan.findings
    assert "NON CONFORME" in first_page


def test_planted_one_to_many_search_function(fresh_home: Path, tmp_path: Path, faces_dir: Path) -> None:
    planted = tmp_path / "code"
    shutil.copytree(REPO / "biometric", planted / "biometric", ignore=shutil.ignore_patterns("__pycache__"))
    (planted / "biometric" / "gallery.py").write_text(
        "from biometric.template import Template\n\n\n"
        "def best_of(probe: Template, templates: list[Template]) -> int:\n"
        "    return min(range(len(templates)), key=lambda i: templates[i].distance(probe))\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(planted)
    results, first_page = _run_planted(fresh_home, faces_dir, {"no-one-to-many"}, env, tmp_path)
    r = results["no-one-to-many"]
    assert r.result == probes.FAIL
    assert any("gallery.py" in f and "collection of templates" in f for f in r.findings), r.findings
    assert "NON CONFORME" in first_page


def test_planted_worker_that_can_write_files(fresh_home: Path, tmp_path: Path, faces_dir: Path) -> None:
    env = _planted_env(tmp_path, (
        "import biometric.isolation as iso\n"
        "iso.apply_sandbox = lambda **kw: iso._report(False, 'planted: no sandbox', False, False)\n"))
    results, first_page = _run_planted(fresh_home, faces_dir, {"worker-cannot-write"}, env, tmp_path)
    r = results["worker-cannot-write"]
    assert r.result == probes.FAIL
    assert any("worker wrote a file" in f for f in r.findings), r.findings
    assert "NON CONFORME" in first_page


def test_a_probe_that_cannot_run_is_not_run_never_pass(fresh_home: Path, tmp_path: Path) -> None:
    cfg = probes.ProbeConfig(home=fresh_home, node_id=Home(fresh_home).node_id, cardbound=CARDBOUND, python=Path(sys.executable),
                             enrol_photo=None, live_photo=None, only={"write-watch", "delete-source"})
    run = probes.run_probes(cfg)
    assert [r.result for r in run.results] == [probes.NOT_RUN] * len(probes.PROBES)
    by = {r.probe: r for r in run.results}
    assert "no probe photos" in by["write-watch"].findings[0]
    assert "did not run" in by["delete-source"].findings[0]
    assert "not selected" in by["audit-schema"].findings[0]
    assert not run.conform


def test_operator_inventory_reads_the_desk_register_or_says_not_configured(tmp_path: Path) -> None:
    from iso27001_evidence import sources

    home = tmp_path / "home"
    home.mkdir()
    empty = sources.operator_inventory(CARDBOUND, home)
    # the installed desk's inventory command (issue 13) is the source; a home without a desk has no operator
    assert empty["source"] == "cardbound desk operators --json" and empty["operators"] == []
    (home / "desk").mkdir(exist_ok=True)
    (home / "desk" / "operators.json").write_text(json.dumps({"version": 1, "invitations": [], "operators": {
        "alice": {"operator_id": "alice", "role": "admin", "lang": "fr", "created": "2026-11-30T10:00:00+00:00",
                  "credentials": [{"credential_id": "ab" * 32, "data": "cd" * 100, "sign_count": 7,
                                   "created": "2026-11-30T10:01:00+00:00", "last_used": "2026-12-01T07:00:00+00:00"}]}}}))
    inv = sources.operator_inventory(CARDBOUND, home)
    assert inv["source"] == "cardbound desk operators --json"
    (op,) = inv["operators"]
    assert op["operator_id"] == "alice" and op["role"] == "admin"
    assert op["credentials"][0]["sign_count"] == 7 and op["credentials"][0]["id"].startswith("abab")
    assert "cd" * 20 not in json.dumps(inv)  # the credential's public key data is not copied into the pack


def test_probe_under_flock_uses_the_inherited_lock_and_waits_for_a_foreign_one(tmp_path: Path) -> None:
    """`flock LOCK cardbound evidence ...` (the guide's command) must not deadlock on its own lock; a lock held by
    another session is waited for, then the probe says NOT RUN."""
    lock = tmp_path / "readers.lock"
    env = {**os.environ, "CARDBOUND_PCSC_LOCK": str(lock)}
    env.pop("CARDBOUND_PCSC_LOCK_HOLDER", None)
    script = ("from iso27001_evidence import probes\n"
              "try:\n"
              "    with probes.readers_lock(print, timeout_s=1.5):\n"
              "        print('locked')\n"
              "except probes._NotRun as exc:\n"
              "    print('not run:', exc)\n")
    own = subprocess.run(["flock", str(lock), sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=30)
    assert own.stdout.strip().endswith("locked"), own.stdout + own.stderr
    holder = subprocess.Popen(["flock", "--no-fork", str(lock), "sleep", "20"])  # one process: ours to stop
    try:
        for _ in range(50):  # until the holder has it
            if subprocess.run(["flock", "-n", str(lock), "true"]).returncode != 0:
                break
        foreign = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30)
    finally:
        holder.terminate()
        holder.wait()
    assert "waiting for the virtual card readers" in foreign.stdout
    assert "not run: virtual readers busy" in foreign.stdout

"""Exports carry the signed checkpoint and per-row inclusion proofs; verify-export catches any change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_helpers import gate_event, run_cli

from audit import AuditLog, OperatorLogin
from audit.export import verify_export
from cardbound.errors import ExitCode

NODE = "gate-07"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    t = [T0]
    with AuditLog.open_station(tmp_path, NODE, checkpoint_every=25, clock=lambda: t[0]) as log:
        for i in range(120):
            t[0] = T0 + i * HOUR
            log.append(gate_event(i) if i % 4 else OperatorLogin(station_id="desk-1", operator_id=f"op-{i}"))
    return tmp_path


def _export(home: Path, out: Path, *extra: str) -> int:
    return run_cli(["--home", str(home), "audit", "export", "--out", str(out), *extra])


def _check(out: Path, capsys: pytest.CaptureFixture[str], home: Path | None = None) -> tuple[int, str]:
    extra = ["--key", str(home / "keys" / f"audit-{NODE}.ed25519.pub")] if home else []
    rc = run_cli(["audit", "verify-export", str(out), *extra])
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_filtered_export_verifies_offline(
    home: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"x.{fmt}"
    rc = _export(home, out, "--format", fmt, "--type", "gate.decision",
                 "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-03")
    assert rc == 0
    assert "exported 18 entries" in capsys.readouterr().out  # hours 24..47, minus the 6 logins
    rc, text = _check(out, capsys, home)
    assert rc == 0 and "OK export" in text and "18 of 18 rows verified" in text
    # The export was itself audited.
    with AuditLog.open_station(home, NODE) as log:
        last = log.entry(log.size - 1).record()
    assert last["type"] == "evidence.exported" and last["payload"]["entries"] == 18


def test_tampered_export_rows_are_named(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.jsonl"
    assert _export(home, out) == 0
    lines = out.read_text().splitlines()
    row = json.loads(lines[5])
    row["payload"]["decision"] = "refused" if row["payload"]["decision"] == "granted" else "granted"
    lines[5] = json.dumps(row)
    del lines[9]
    out.write_text("\n".join(lines) + "\n")
    rc, text = _check(out, capsys, home)
    assert rc == ExitCode.AUDIT
    assert f"MODIFIED: line 6 (node {NODE} entry {row['idx']}): does not verify" in text
    assert "MISSING: export holds 119 rows, its manifest says 120" in text


def test_export_with_other_key_fails(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.jsonl"
    assert _export(home, out) == 0
    with AuditLog.open(tmp_path / "other.db", NODE, key_file=tmp_path / "other.ed25519"):
        pass
    rc = run_cli(["audit", "verify-export", str(out), "--key", str(tmp_path / "other.ed25519.pub")])
    assert rc == ExitCode.AUDIT
    assert "BAD-SIGNATURE" in capsys.readouterr().err


def test_export_of_other_node_or_bad_time_is_one_line(home: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _export(home, tmp_path / "x", "--node", "gate-99") == ExitCode.USAGE
    assert _export(home, tmp_path / "x", "--from", "yesterday") == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "not gate-99" in err and "bad time" in err and "Traceback" not in err


def test_verify_export_api_reports_counts(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    assert _export(home, out, "--format", "csv") == 0
    report = verify_export(out)
    assert report.ok and report.verified == 120 and report.warnings  # key taken from the export: warned


def test_dropped_row_with_edited_manifest_still_caught(home: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    out = tmp_path / "x.jsonl"
    assert _export(home, out, "--type", "gate.decision") == 0
    lines = out.read_text().splitlines(keepends=True)
    del lines[3]  # an inconvenient decision disappears...
    out.write_text("".join(lines))
    manifest_path = tmp_path / "x.jsonl.checkpoint.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["rows"] -= 1  # ...and the unsigned fields are made to agree
    manifest["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    rc, text = _check(out, capsys, home)
    assert rc == ExitCode.AUDIT
    assert "MISSING: export holds 89 rows, its manifest says 90" in text
    assert "differs from the one its manifest describes" in text


# --- exports as evidence: ISO 8601 UTC, owner-only, never clobbered silently, no silent empty result ---------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_times_are_iso_utc_and_files_owner_only(home: Path, tmp_path: Path, fmt: str) -> None:
    import csv
    import stat

    out = tmp_path / f"x.{fmt}"
    assert _export(home, out, "--format", fmt, "--from", "2026-01-01T05:00:00Z", "--to", "2026-01-01T06:00:00Z") == 0
    if fmt == "jsonl":
        row = json.loads(out.read_text().splitlines()[0])
        time_text = row["time"]
    else:
        time_text = list(csv.DictReader(out.open()))[0]["time"]
    assert time_text == "2026-01-01T05:00:00.000Z"
    manifest = json.loads(Path(f"{out}.checkpoint.json").read_text())
    assert manifest["filters"]["from"] == "2026-01-01T05:00:00.000Z"
    for path in (out, Path(f"{out}.checkpoint.json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_export_never_overwrites_silently(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.jsonl"
    out.write_text("an auditor's earlier export\n")
    out.chmod(0o644)
    assert _export(home, out) == ExitCode.USAGE
    assert "already exists" in capsys.readouterr().err and out.read_text() == "an auditor's earlier export\n"
    assert _export(home, out, "--force") == 0
    assert out.stat().st_mode & 0o077 == 0
    rc, text = _check(out, capsys, home)
    assert rc == 0, text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--type", "gate.decisions"], "unknown event type 'gate.decisions'"),
        (["--from", "2026-01-03", "--to", "2026-01-02"], "reversed period"),
        (["--from", "2026-01-02", "--to", "2026-01-02T00:00:00Z"], "empty period"),
    ],
)
def test_export_requests_that_would_silently_export_nothing_are_errors(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with AuditLog.open_station(home, NODE) as log:
        size = log.size
    out = tmp_path / "x.jsonl"
    assert _export(home, out, *extra) == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert not out.exists()
    with AuditLog.open_station(home, NODE) as log:
        assert log.size == size  # no evidence.exported event for an export that did not happen

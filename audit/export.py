"""Exports for auditors: selected entries + the signed checkpoint + one inclusion proof per entry.

Files written for `--out FILE` (created 0600; an existing file is never overwritten unless asked):
- FILE (jsonl): one JSON object per entry: node, idx, time (ISO 8601 UTC, ms), time_ms, type, payload, proof
  (base64 hashes);
  FILE (csv): the same as columns (payload as compact JSON, proof space-separated);
- FILE.checkpoint.json: per node the signed checkpoint (C2SP note) and the node's verifier key, the filters,
  the row count and the SHA-256 of FILE.

Checking needs nothing but these files (and, for independence, the node's verifier key from elsewhere): each
row is re-encoded canonically, hashed as an RFC 9162 leaf and its inclusion proof checked against the signed
root. A row that was altered, invented or moved fails. A node's own export also carries a signed manifest
(signed note, origin `cardbound.audit-export/<node>`: row count, SHA-256 of FILE, filters), so dropped rows
are caught even if the manifest is edited; a central export's manifest is unsigned (the central store holds
no key) and says so.
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit import merkle
from audit.checkpoint import CheckpointError, Signer, VerifierKey, open_note, parse_checkpoint, sign_note
from audit.events import EVENT_TYPES, EventValidationError, EvidenceExported, event_from_record
from audit.log import AuditLog, Entry, decode_entry, encode_entry

FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ("node", "idx", "time", "time_ms", "type", "payload", "proof")
MANIFEST_KIND = "cardbound-audit-export"
EXPORT_ORIGIN_PREFIX = "cardbound.audit-export/"


class ExportError(ValueError):
    """Bad export request or unreadable export file."""


def parse_time(text: str) -> int:
    """ISO 8601 date or date-time (UTC if no offset) -> ms since the epoch."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(f"bad time {text!r}: expected ISO 8601, e.g. 2026-11-24 or 2026-11-24T10:00:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_request(
    fmt: str, from_ms: int | None, to_ms: int | None, event_type: str | None, out: Path, overwrite: bool
) -> None:
    """Refuse, before anything is written, a request that would silently export nothing or clobber a file."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: choose {' or '.join(FORMATS)}")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise ExportError(f"unknown event type {event_type!r}: one of {', '.join(sorted(EVENT_TYPES))}")
    if from_ms is not None and to_ms is not None and from_ms >= to_ms:
        what = "empty" if from_ms == to_ms else "reversed"
        raise ExportError(f"{what} period: --from {_iso(from_ms)} is not before --to {_iso(to_ms)}")
    if not overwrite:
        for path in (Path(out), _manifest_path(Path(out))):
            if path.exists():
                raise ExportError(f"{path} already exists: choose another --out, or pass --force to replace it")


def _manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint.json")


def _create(path: Path, overwrite: bool) -> int:
    """A file descriptor for a new owner-only file (an existing file is replaced only when asked)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ExportError(f"{path} already exists: choose another --out, or pass --force to replace it") from None
    os.fchmod(fd, 0o600)  # a replaced file keeps no wider mode
    return fd


def _filters(from_ms: int | None, to_ms: int | None, **rest: Any) -> dict[str, Any]:
    return {"from": None if from_ms is None else _iso(from_ms), "to": None if to_ms is None else _iso(to_ms), **rest}


@dataclass(frozen=True)
class ExportResult:
    rows: int
    out: Path
    manifest: Path
    sha256: str


def _row(node: str, entry: Entry, proof: list[bytes]) -> dict[str, Any]:
    rec = decode_entry(entry.body)
    return {
        "node": node,
        "idx": entry.index,
        "time": _iso(rec["time"]),
        "time_ms": rec["time"],
        "type": rec["type"],
        "payload": rec["payload"],
        "proof": [base64.b64encode(p).decode() for p in proof],
    }


def export_log(
    log: AuditLog,
    out: Path,
    *,
    fmt: str = "jsonl",
    from_ms: int | None = None,
    to_ms: int | None = None,
    event_type: str | None = None,
    node: str | None = None,
    operator_id: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Export entries of a local log matching the filters; the export is itself recorded in the log."""
    check_request(fmt, from_ms, to_ms, event_type, out, overwrite)
    if node is not None and node != log.node_id:
        raise ExportError(f"this log is node {log.node_id}, not {node}")
    note = log.checkpoint()
    cp = parse_checkpoint(note, log.verifier_key)
    get = functools.lru_cache(maxsize=1 << 16)(log.tree().node)  # siblings repeat across proofs
    entries = log.entries(from_ms=from_ms, to_ms=to_ms, event_type=event_type, stop=cp.size)
    rows = (_row(log.node_id, e, merkle.inclusion_proof(e.index, cp.size, get)) for e in entries)
    filters = _filters(from_ms, to_ms, type=event_type, node=node)
    result = write_export(out, fmt, rows, {log.node_id: (note, log.verifier_key.encode())}, filters, log.signer,
                          overwrite=overwrite)
    log.append(
        EvidenceExported(
            node_id=log.node_id, entries=result.rows, export_format=fmt,
            from_time=None if from_ms is None else _iso(from_ms), to_time=None if to_ms is None else _iso(to_ms),
            event_type=event_type, export_sha256=result.sha256, operator_id=operator_id,
        )
    )
    return result


def write_export(
    out: Path,
    fmt: str,
    rows: Iterator[dict[str, Any]],
    nodes: dict[str, tuple[str, str]],
    filters: dict[str, Any],
    signer: Signer | None = None,
    *,
    overwrite: bool = False,
) -> ExportResult:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    count = 0
    with open(_create(out, overwrite), "w", newline="") as fh:
        if fmt == "csv":
            buf = io.StringIO()
            csv.writer(buf).writerow(CSV_COLUMNS)
            fh.write(buf.getvalue())
            digest.update(buf.getvalue().encode())
        for row in rows:
            if fmt == "csv":
                buf = io.StringIO()
                csv.writer(buf).writerow([
                    row["node"], row["idx"], row["time"], row["time_ms"], row["type"],
                    json.dumps(row["payload"], sort_keys=True, separators=(",", ":")), " ".join(row["proof"]),
                ])
                line = buf.getvalue()
            else:
                line = json.dumps(row, sort_keys=True, separators=(",", ":")) + "\n"
            fh.write(line)
            digest.update(line.encode())
            count += 1
    manifest = _manifest_path(out)
    content: dict[str, Any] = {
        "kind": MANIFEST_KIND,
        "version": 1,
        "format": fmt,
        "rows": count,
        "sha256": digest.hexdigest(),
        "filters": filters,
        "nodes": {n: {"checkpoint": note, "vkey": vkey} for n, (note, vkey) in nodes.items()},
    }
    if signer is not None:
        # The node vouches for *which* rows it exported (not only that each row is in its log), so a dropped
        # row is caught even if the manifest is edited. Own origin line: never confused with a checkpoint.
        content["signed"] = sign_note(_manifest_text(signer.name, count, digest.hexdigest(), filters), signer)
    with open(_create(manifest, overwrite), "w") as mf:
        mf.write(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return ExportResult(count, out, manifest, digest.hexdigest())


def _manifest_text(key_name: str, rows: int, sha256: str, filters: dict[str, Any]) -> str:
    node = key_name.removeprefix("cardbound-audit-")
    return f"{EXPORT_ORIGIN_PREFIX}{node}\n{rows}\n{sha256}\n{json.dumps(filters, sort_keys=True)}\n"


# --- checking an export ---------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    rows: int = 0
    verified: int = 0
    findings: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def _read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row dict) or (line number, error text)."""
    with path.open(newline="") as fh:
        if fmt == "csv":
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or tuple(header) != CSV_COLUMNS:
                yield 1, "not a cardbound audit CSV export (header)"
                return
            for n, cols in enumerate(reader, start=2):
                try:
                    node, idx, _iso_time, time_ms, typ, payload, proof = cols
                    yield n, {"node": node, "idx": int(idx), "time": _iso_time, "time_ms": int(time_ms), "type": typ,
                              "payload": json.loads(payload), "proof": proof.split() if proof else []}
                except ValueError:
                    yield n, "malformed row"
        else:
            for n, line in enumerate(fh, start=1):
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise ValueError
                    yield n, row
                except ValueError:
                    yield n, "malformed row"


def _row_time(row: dict[str, Any]) -> int:
    """The entry time of a row: `time_ms` (signed content), which the ISO `time` must agree with."""
    if isinstance(row.get("time"), int) and "time_ms" not in row:
        return int(row["time"])  # exports written before times were ISO 8601
    time_ms = row["time_ms"]
    if not isinstance(time_ms, int) or row.get("time") != _iso(time_ms):
        raise ValueError("time and time_ms disagree")
    return time_ms


def verify_export(path: Path, keys: dict[str, VerifierKey] | None = None) -> ExportReport:
    """Check every row of an export against its node's signed checkpoint. `keys`: node -> verifier key kept
    apart from the export (otherwise the manifest's keys are used, with a warning)."""
    path = Path(path)
    manifest_path = path.with_name(path.name + ".checkpoint.json")
    report = ExportReport()
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("kind") != MANIFEST_KIND:
            raise ValueError("not an export manifest")
        fmt = manifest["format"]
        nodes = manifest["nodes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{manifest_path}: unreadable export manifest ({exc.__class__.__name__})") from None
    if fmt not in FORMATS:
        raise ExportError(f"{manifest_path}: unknown format {fmt!r}")
    checkpoints = {}
    node_keys: dict[str, VerifierKey] = {}
    for node, info in nodes.items():
        key = (keys or {}).get(node)
        if key is None:
            key = VerifierKey.decode(info["vkey"])
            report.warnings.append(f"node {node}: verifier key taken from the export itself; pass --key to check "
                                   "against a key kept elsewhere")
        node_keys[node] = key
        try:
            checkpoints[node] = parse_checkpoint(info["checkpoint"], key)
        except CheckpointError as exc:
            report.findings.append(f"BAD-SIGNATURE: checkpoint of node {node}: {exc}")
    expected_rows, expected_sha = manifest.get("rows"), manifest.get("sha256")
    if "signed" in manifest and len(node_keys) == 1:
        (node, key), = node_keys.items()
        try:
            text = open_note(str(manifest["signed"]), key)
            origin_line, rows_line, sha_line, filters_line = text.split("\n")[:4]
            if origin_line != EXPORT_ORIGIN_PREFIX + node:
                raise CheckpointError(f"signed manifest is for {origin_line}")
            expected_rows, expected_sha = int(rows_line), sha_line
            if json.loads(filters_line) != manifest.get("filters"):
                report.findings.append("MODIFIED: export filters differ from the signed manifest")
        except (CheckpointError, ValueError) as exc:
            report.findings.append(f"BAD-SIGNATURE: export manifest: {exc}")
    else:
        report.warnings.append("manifest not signed (central export): dropped rows can only be found against the "
                               "log itself")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected_sha:
        report.findings.append("MODIFIED: export file differs from the one its manifest describes (sha256)")
    for n, row in _read_rows(path, fmt):
        if isinstance(row, str):
            report.findings.append(f"MALFORMED: line {n}: {row}")
            continue
        report.rows += 1
        node = str(row.get("node"))
        cp = checkpoints.get(node)
        if cp is None:
            report.findings.append(f"UNVERIFIABLE: line {n}: no valid checkpoint for node {node}")
            continue
        try:
            idx = int(row["idx"])
            event = event_from_record(str(row["type"]), row["payload"])
            time_ms = _row_time(row)
            body = encode_entry(idx, node, time_ms, event)
            proof = [base64.b64decode(p, validate=True) for p in row["proof"]]
            merkle.verify_inclusion(idx, cp.size, merkle.leaf_hash(body), proof, cp.root)
        except (KeyError, TypeError, ValueError, binascii.Error, EventValidationError, merkle.ProofError) as exc:
            what = "does not verify" if isinstance(exc, merkle.ProofError) else f"unreadable ({exc.__class__.__name__})"
            report.findings.append(f"MODIFIED: line {n} (node {node} entry {row.get('idx')}): {what}")
            continue
        report.verified += 1
    if report.rows != expected_rows:
        report.findings.append(f"MISSING: export holds {report.rows} rows, its manifest says {expected_rows}")
    return report

"""A stand-alone writer process for the crash and concurrency tests: appends events, acknowledges each index.

    python audit_writer.py DB KEYFILE NODE COUNT TAG [BATCH]

Prints `ready` once the log is open, then `<index> <tag>-<n>` after each append has returned (i.e. committed),
flushing every line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from audit import AuditLog, events


def ev(tag: str) -> events.GateDecision:
    return events.GateDecision(
        gate_id="gate-07", card_id=tag, decision="granted", reason_code="match", security_level=1, total_ms=5
    )


def run(db: Path, key: Path, node: str, count: int, tag: str, batch: int = 1, out=sys.stdout) -> None:  # type: ignore[no-untyped-def]
    with AuditLog.open(db, node, key_file=key, checkpoint_every=7) as log:
        out.write("ready\n")
        out.flush()
        n = 0
        while n < count:
            tags = [f"{tag}-{n + j}" for j in range(min(batch, count - n))]
            indices = log.append_many([ev(t) for t in tags])
            out.write("".join(f"{i} {t}\n" for i, t in zip(indices, tags, strict=True)))
            out.flush()
            n += len(tags)


if __name__ == "__main__":
    a = sys.argv
    run(Path(a[1]), Path(a[2]), a[3], int(a[4]), a[5], int(a[6]) if len(a) > 6 else 1)

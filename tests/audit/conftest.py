"""Fixtures for the audit tests. This folder is put on sys.path so `audit_helpers` (unique name) imports."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

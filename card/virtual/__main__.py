"""`python -m card.virtual --image FILE ...`: the same as `cardbound card virtual` (used by the test
harness)."""

from __future__ import annotations

import sys

from card.virtual.main import main

sys.exit(main())

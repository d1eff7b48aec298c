"""Composition root of cardbound: command line, configuration and the station's home directory.

Only this package wires the others together. Library code in `biometric`, `card`, `audit`, `enrol`, `verify`
and `iso27001_evidence` never imports it: their thin `cli.py` adapters raise their own package's typed errors and
return outcomes (a gate `Reason`, a failure enum), and `cardbound.exits` alone maps those to exit codes.
"""

import sys

# A station process writes nothing but its audit log: not even bytecode caches of the modules it imports.
sys.dont_write_bytecode = True

__version__ = "0.1.0"

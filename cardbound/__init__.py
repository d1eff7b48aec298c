"""Composition root of cardbound: command line, configuration and the station's home directory.

Only this package wires the others together. Library code in `biometric`, `card`, `audit`, `enrol`, `verify`
and `iso27001_evidence` never imports it; their thin `cli.py` adapters may import the leaf modules
`cardbound.errors` (CliError, ExitCode) and `cardbound.home` (Home).
"""

import sys

# A station process writes nothing but its audit log: not even bytecode caches of the modules it imports.
sys.dont_write_bytecode = True

__version__ = "0.1.0"

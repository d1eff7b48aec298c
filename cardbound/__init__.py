"""Composition root of cardbound: command line, configuration and the station's home directory.

Only this package wires the others together; `biometric`, `card`, `audit`, `enrol`, `verify` and
`iso27001_evidence` never import it.
"""

__version__ = "0.1.0"

"""Enrolment station: capture, quality gate, template, seal, write card, read back, destroy sample."""

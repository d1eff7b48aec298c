"""Tamper-evident audit log: typed events, RFC 9162 Merkle tree, signed checkpoints, retention, storage."""

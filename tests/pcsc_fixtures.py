"""pytest plugin: fixtures that start pcscd and virtual cards and stop them by PID (filled in by the card work)."""

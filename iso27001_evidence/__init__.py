"""Evidence pack for the recognition audit (art. 2.5.2.85 §2)."""

"""A PIV-subset virtual card behind pcscd + vsmartcard-vpcd, for tests and the demo. Test use only."""

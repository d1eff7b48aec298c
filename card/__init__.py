"""Smartcard side: PC/SC transport, PIV card edge, sealed-template container, keys/PKI, the virtual card."""

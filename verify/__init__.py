"""Gate verifier: card authentication, unseal, live capture, 1:1 compare, decision, keep nothing."""

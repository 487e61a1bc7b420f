"""Identity, keys, short-lived tokens and per-key limits (DESIGN section 9)."""

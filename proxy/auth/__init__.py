"""Identity, keys, short-lived tokens and per-key limits (docs/auth.md)."""

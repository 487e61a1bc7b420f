"""Identity, keys, short-lived tokens and per-key limits (README: Keys and limits)."""

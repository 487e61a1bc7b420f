"""Shared-state backends (DESIGN section 10): what must hold across processes, behind small async
interfaces, with the in-memory implementations a single process uses."""

"""Operational routes (/healthz, /readyz, /metrics) and the method catalogue (/v1/methods)."""

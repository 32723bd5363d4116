"""What the API process and the worker share: settings, database, tables, artifact store, job state,
dispatch. Nothing here imports FastAPI (tests/test_boundaries.py holds every package to its side)."""

"""Batch predictions (API 1.2): a model applied to a stored dataset in the workers, like a job."""

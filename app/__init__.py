"""deepclust HTTP service: validation, upload ingestion, persistence, storage, settings."""

"""Tenants and their API keys; ownership (another tenant's id answers 404)."""

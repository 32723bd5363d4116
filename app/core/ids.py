import uuid


def new_id(prefix: str) -> str:
    """Opaque ids with a prefix that says what they name (ds_, job_, mdl_, tn_, key_)."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"

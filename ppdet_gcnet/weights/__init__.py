"""Weights: resolving `weights` / `pretrain_weights` config values to local files."""
import os


def resolve_weights(value):
    """Return a local path for a weights value (local path today; names and URLs later)."""
    return value if value is None else os.path.expanduser(str(value))

"""Pretrained weights: the model-zoo manifest, verified resumable downloads into a cache,
safe archive extraction, and conversion of the legacy static-graph GCNet weights.

Importing this package is cheap (no Paddle): tools call `resolve_weights(cfg.weights)` and
`resolve_weights(cfg.pretrain_weights)` before ppdet sees the values, so ppdet never downloads.
"""
from .manifest import MODELS, find_entry, get_entry
from .resolve import CACHE_ENV, WeightsError, cache_root, fetch_entry, resolve_weights

__all__ = ['resolve_weights', 'WeightsError', 'MODELS', 'find_entry', 'get_entry',
           'fetch_entry', 'cache_root', 'CACHE_ENV']

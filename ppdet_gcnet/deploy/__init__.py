"""Export-side helpers that keep an exported model runnable by Paddle Inference's oneDNN path."""
from .onednn_safe import (ONEDNN_UNSAFE_OPS, OneDNNSafeFPN, find_onednn_unsafe_ops,
                          make_onednn_safe, upsample_nearest_2x)

__all__ = ['ONEDNN_UNSAFE_OPS', 'OneDNNSafeFPN', 'find_onednn_unsafe_ops', 'make_onednn_safe',
           'upsample_nearest_2x']

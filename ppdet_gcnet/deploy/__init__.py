"""Export-side helpers that keep an exported model runnable by Paddle Inference's oneDNN path."""
from .onednn_safe import (ONEDNN_UNSAFE_OPS, LastAxisLayerNorm, OneDNNSafeFPN, make_onednn_safe,
                          upsample_nearest_2x)

__all__ = ['ONEDNN_UNSAFE_OPS', 'LastAxisLayerNorm', 'OneDNNSafeFPN', 'make_onednn_safe',
           'upsample_nearest_2x']

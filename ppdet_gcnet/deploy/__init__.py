"""Export-side helpers: oneDNN-safe graphs, raw mask outputs, and the deploy exporter."""
from .onednn_safe import (ONEDNN_UNSAFE_OPS, LastAxisLayerNorm, OneDNNSafeFPN, make_onednn_safe,
                          upsample_nearest_2x)
from .raw_masks import RawMaskOutput, use_raw_masks

__all__ = ['ONEDNN_UNSAFE_OPS', 'LastAxisLayerNorm', 'OneDNNSafeFPN', 'RawMaskOutput',
           'make_onednn_safe', 'upsample_nearest_2x', 'use_raw_masks']

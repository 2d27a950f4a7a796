"""Legacy-exact inference: the conventions of PaddleDetection's static-graph (Paddle 1.x) Mask
R-CNN, which trained and evaluated the seed's GCNet weights, as registered ppdet components.

One module per stage; configs/gcnet/legacy/_base_/ chooses them. docs/weights.md says what each
changes, why, and how exactly the pipeline reproduces the legacy detections.
"""
from . import (anchors, box_decode, mask_paste, proposals, reader,  # noqa: F401
               roi_extractor)  # (importing registers the components)

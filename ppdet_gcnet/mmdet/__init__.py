"""Pipeline switches for evaluating mmdetection-trained weights with PaddleDetection's detectors.

Most of mmdetection's test-time pipeline is ppdet's with the right settings (configs/gcnet/_base_/
mmdet_*.yml: aligned RoIAlign, anchors, box coder weights, NMS, mask pasting). What needs code
is registered here, as subclasses of ppdet's components:

    MMDetCascadeHead   Cascade R-CNN class scores = softmax of the stages' mean logits
"""
from .cascade_head import MMDetCascadeHead

__all__ = ['MMDetCascadeHead']

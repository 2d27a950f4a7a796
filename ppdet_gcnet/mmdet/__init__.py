"""Pipeline switches for evaluating mmdetection-trained weights with PaddleDetection's detectors.

Most of mmdetection 2.x's test-time pipeline is ppdet's with the right settings
(configs/gcnet/_base_/mmdet_*.yml: aligned RoIAlign with sampling_ratio 0, anchors, box coder
weights, NMS, mask pasting). What needs code is registered here, as subclasses of ppdet's
components, and chosen by those configs:

    MMDetProposalGenerator  RPN proposals: dw/dh clamped both ways, only empty boxes dropped
    MMDetBBoxHead           box decoding with dw/dh clamped both ways
    MMDetCascadeHead        the same per stage; class scores = softmax of the stages' mean logits
    MMDetCascadeMaskHead    one mask head per cascade stage, masks = mean of their sigmoids
    MMDetBBoxPostProcess    detections whose box is empty after clipping keep their class
"""
from .box_heads import MMDetBBoxHead, MMDetCascadeHead
from .mask_head import MMDetCascadeMaskHead
from .post_process import MMDetBBoxPostProcess
from .proposals import MMDetProposalGenerator

__all__ = ['MMDetBBoxHead', 'MMDetBBoxPostProcess', 'MMDetCascadeHead', 'MMDetCascadeMaskHead',
           'MMDetProposalGenerator']

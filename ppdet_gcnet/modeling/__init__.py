from .class_agnostic_nms import ClassAgnosticNMS
from .gc_block import GlobalContextBlock, GCConfigError
from .gc_resnet import GCResNet
from .jittered_gt_assigner import JitteredGTBBoxAssigner
from .sampled_mask_assigner import SampledMaskAssigner

__all__ = ['ClassAgnosticNMS', 'GlobalContextBlock', 'GCConfigError', 'GCResNet',
           'JitteredGTBBoxAssigner', 'SampledMaskAssigner']

from .gc_block import GlobalContextBlock, GCConfigError
from .gc_resnet import GCResNet

__all__ = ['GlobalContextBlock', 'GCConfigError', 'GCResNet']

"""Record what every GC block of a model computes, through forward hooks only.

The hooks read tensors and return None, so the model's outputs are exactly those of a run
without them. Per block and per image they keep:
  * the spatial attention map: softmax over H*W of `conv_mask`'s output (None for 'avg' pooling);
  * mean |x| of the block input, and mean |x * sigmoid(t_mul)| when both fusions are present
    (the features the add term is actually added to, since multiplication comes first);
  * the fusion terms t_add / t_mul (outputs of `channel_add_conv` / `channel_mul_conv`).
Full feature maps are not kept: a block's input is held only until that block has finished.
"""
from dataclasses import dataclass, field

import numpy as np
import paddle
import paddle.nn.functional as F

from ppdet_gcnet.modeling.gc_block import GlobalContextBlock


@dataclass
class BlockRecord:
    """What one GC block computed for one batch (arrays have the batch as first axis)."""
    name: str                       # full sublayer name, e.g. backbone.res3.res3a.gc_block
    pooling_type: str
    fusion_types: tuple
    attention: np.ndarray = None    # [N, H, W], sums to 1 over H*W; None for 'avg' pooling
    feature_hw: tuple = None        # (H, W) of the block input
    input_abs_mean: np.ndarray = None      # [N] mean |x|
    add_base_abs_mean: np.ndarray = None   # [N] mean |features the add term is added to|
    add_term: np.ndarray = None     # [N, C] t_add
    mul_term: np.ndarray = None     # [N, C] t_mul (before the sigmoid)

    @property
    def stage_name(self):
        """Name of the layer that holds this block's residual block (a row of the sheet)."""
        parts = self.name.split('.')
        return '.'.join(parts[:-2]) if len(parts) >= 3 else ''

    @property
    def short_name(self):
        """Name of the residual block that owns this GC block, e.g. res3a."""
        parts = self.name.split('.')
        return parts[-2] if len(parts) >= 2 else self.name


class NoGCBlockError(ValueError):
    """The model has no GlobalContextBlock, so there is nothing to capture."""


def find_gc_blocks(model):
    """[(name, block)] of every GlobalContextBlock in `model`, in forward (definition) order."""
    return [(name, layer) for name, layer in model.named_sublayers()
            if isinstance(layer, GlobalContextBlock)]


def _numpy(tensor):
    return tensor.detach().astype('float32').numpy()


class ContextCapture:
    """Context manager that hooks every GC block of `model` and collects `BlockRecord`s.

    Usage:
        with ContextCapture(model) as capture:
            model.backbone(inputs)
        records = capture.records   # one BlockRecord per GC block, for the last forward

    Each forward pass replaces the previous records. Hooks are removed on exit.
    """

    def __init__(self, model):
        self.blocks = find_gc_blocks(model)
        if not self.blocks:
            raise NoGCBlockError(f"{type(model).__name__} has no GlobalContextBlock to capture; "
                                 f"use a config whose backbone is GCResNet")
        self.records = []
        self._by_block = {}
        self._pending_input = {}
        self._handles = []

    def __enter__(self):
        for name, block in self.blocks:
            self._hook_block(name, block)
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._pending_input.clear()
        return False

    def _hook_block(self, name, block):
        key = id(block)
        add = self._handles.append
        add(block.register_forward_pre_hook(
            lambda layer, inputs: self._on_block_input(name, layer, inputs[0])))
        add(block.register_forward_post_hook(
            lambda layer, inputs, output: self._on_block_output(layer)))
        if block.pooling_type == 'att':
            add(block.conv_mask.register_forward_post_hook(
                lambda layer, inputs, output: self._on_mask_logits(key, output)))
        if block.channel_add_conv is not None:
            add(block.channel_add_conv.register_forward_post_hook(
                lambda layer, inputs, output: self._store(key, 'add_term', output)))
        if block.channel_mul_conv is not None:
            add(block.channel_mul_conv.register_forward_post_hook(
                lambda layer, inputs, output: self._store(key, 'mul_term', output)))

    def _on_block_input(self, name, block, x):
        # The first GC block of a forward pass starts a new set of records.
        if self._by_block and id(block) in self._by_block:
            self.records, self._by_block = [], {}
        record = BlockRecord(name=name, pooling_type=block.pooling_type,
                             fusion_types=tuple(block.fusion_types),
                             feature_hw=tuple(x.shape[2:]))
        self.records.append(record)
        self._by_block[id(block)] = record
        self._pending_input[id(block)] = x
        return None

    def _on_mask_logits(self, key, logits):
        with paddle.no_grad():
            attention = F.softmax(paddle.flatten(logits, start_axis=2), axis=2)
            attention = attention.reshape([logits.shape[0]] + list(logits.shape[2:]))
        self._by_block[key].attention = _numpy(attention)
        return None

    def _store(self, key, attribute, term):
        setattr(self._by_block[key], attribute, _numpy(term).reshape(term.shape[0], -1))
        return None

    def _on_block_output(self, block):
        key = id(block)
        x = self._pending_input.pop(key)
        record = self._by_block[key]
        with paddle.no_grad():
            record.input_abs_mean = _numpy(x.abs().mean(axis=[1, 2, 3]))
            if record.add_term is not None:
                base = x
                if record.mul_term is not None:
                    base = x * F.sigmoid(paddle.to_tensor(record.mul_term)).reshape(
                        [x.shape[0], -1, 1, 1]).astype(x.dtype)
                record.add_base_abs_mean = _numpy(base.abs().mean(axis=[1, 2, 3]))
        return None

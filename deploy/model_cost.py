"""Parameters and multiply-accumulates (MACs) of a dygraph detector, counted on a real forward.

MACs come from forward hooks on every Conv2D, Conv2DTranspose and Linear, plus the GC block's
context matmul (C x HW per image), with the shapes of the actual run (so RoI heads count the
proposals and detections of that run). Element-wise ops, norms and softmax are not counted, as in
the FLOP counters the GCNet paper and mmdetection report (their "FLOPs" are MACs).
"""
import numpy as np
import paddle
import paddle.nn as nn


def count_parameters(model):
    """Learned parameters; BatchNorm running statistics are excluded (they are buffers in the
    PyTorch counts the paper reports)."""
    total = 0
    for name, value in model.state_dict().items():
        if name.endswith(('_mean', '_variance')):
            continue
        total += int(np.prod(value.shape))
    return total


def _conv_macs(layer, inputs, output):
    weight = layer.weight.shape  # [out, in/groups, kh, kw]
    return int(np.prod(output.shape)) * weight[1] * weight[2] * weight[3]


def _conv_transpose_macs(layer, inputs, output):
    weight = layer.weight.shape  # [in, out/groups, kh, kw]
    return int(np.prod(inputs[0].shape)) * weight[1] * weight[2] * weight[3]


def _linear_macs(layer, inputs, output):
    return int(np.prod(output.shape)) * layer.weight.shape[0]


def _gc_context_macs(layer, inputs, output):
    if getattr(layer, 'pooling_type', None) != 'att':
        return 0
    n, c, h, w = inputs[0].shape
    return n * c * h * w


def count_macs(model, inputs):
    """MACs of `model(inputs)` (one forward, no gradients), split by top-level sublayer."""
    from ppdet_gcnet.modeling import GlobalContextBlock
    counters = ((nn.Conv2DTranspose, _conv_transpose_macs), (nn.Conv2D, _conv_macs),
                (nn.Linear, _linear_macs), (GlobalContextBlock, _gc_context_macs))
    totals, hooks = {}, []
    for top_name, top in model.named_children():
        for layer in top.sublayers(include_self=True):
            for layer_type, macs in counters:
                if isinstance(layer, layer_type):
                    def hook(layer, x, y, macs=macs, top_name=top_name):
                        totals[top_name] = totals.get(top_name, 0) + macs(layer, x, y)
                    hooks.append(layer.register_forward_post_hook(hook))
                    break
    try:
        with paddle.no_grad():
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return totals

"""Seeded, realistic weights for the legacy Mask R-CNN R50-vd-FPN GC model, by legacy name.

Pure NumPy, Python 3.8 compatible: the fixture script (Paddle 1.8.5) and the tests (Paddle 3)
both call `legacy_weight(name, shape)` and get the same float32 array, so the ~180 MB of weights
never need committing. Each array has its own RandomState seeded from its name.

The values are chosen to behave like a trained detector where it matters for the comparison:
BN statistics in a sane range and damped residual branches (activations stay O(1) through 16
blocks), small box-regression weights (proposals and boxes stay near their anchors/RoIs), and
classifier weights large enough that many classes score above the 0.05 threshold.
"""
import zlib

import numpy as np

SEED = 2024


def _rng(name):
    return np.random.RandomState((zlib.crc32(name.encode('utf-8')) + SEED) % (2 ** 32))


def _normal(rng, shape, std):
    return (rng.standard_normal(shape) * std).astype(np.float32)


def _uniform(rng, shape, low, high):
    return rng.uniform(low, high, shape).astype(np.float32)


def _fan_in(name, shape):
    if name == 'conv5_mask_w':            # conv2d_transpose weight [in, out, kh, kw]
        return shape[0]
    if len(shape) == 2:                     # fc weight [in, out]
        return shape[0]
    return int(np.prod(shape[1:]))


def legacy_weight(name, shape):
    """float32 array for the legacy variable `name` of the given shape."""
    shape = tuple(int(s) for s in shape)
    rng = _rng(name)
    if name.startswith('bn') or name.startswith('bnv1'):
        kind = name.rsplit('_', 1)[-1]
        if kind == 'scale':
            # last BN of a residual branch damped, as in trained ResNets
            high = 0.35 if 'branch2c' in name else 1.1
            return _uniform(rng, shape, 0.5 * high, high)
        if kind == 'offset':
            return _uniform(rng, shape, -0.1, 0.1)
        if kind == 'mean':
            return _uniform(rng, shape, -0.2, 0.2)
        if kind == 'variance':
            return _uniform(rng, shape, 0.5, 2.0)
        raise KeyError(name)
    if name.startswith('gcb_'):
        if '_ln_' in name:
            return (_uniform(rng, shape, 0.8, 1.2) if name.endswith('weights')
                    else _uniform(rng, shape, -0.1, 0.1))
        if name.endswith('bias'):
            return _uniform(rng, shape, -0.05, 0.05)
        gain = 0.3 if 'conv2' in name else 1.0
        return _normal(rng, shape, gain * np.sqrt(1.0 / _fan_in(name, shape)))
    is_bias = name.endswith('_b') or name.endswith('_bias') or name.endswith('_offset')
    if name.startswith('rpn_cls_logits'):
        return (_uniform(rng, shape, -1.0, 0.0) if is_bias
                else _normal(rng, shape, 1.5 * np.sqrt(1.0 / _fan_in(name, shape))))
    if name.startswith('rpn_bbox_pred') or name.startswith('bbox_pred'):
        return (_uniform(rng, shape, -0.02, 0.02) if is_bias
                else _normal(rng, shape, 0.15 * np.sqrt(1.0 / _fan_in(name, shape))))
    if name.startswith('cls_score'):
        if is_bias:
            return _uniform(rng, shape, -0.5, 0.5)
        # zero-sum columns: the ReLU features' common mode must not pick one class everywhere
        weight = _normal(rng, shape, 2.5 * np.sqrt(1.0 / _fan_in(name, shape)))
        return weight - weight.mean(axis=0, keepdims=True)
    if is_bias:
        return _uniform(rng, shape, -0.05, 0.05)
    gain = 1.0 if name.startswith('fpn_') or name.startswith('mask_fcn') else 2.0
    return _normal(rng, shape, np.sqrt(gain / _fan_in(name, shape)))

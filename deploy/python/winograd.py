"""fp32 3x3 convolutions as Winograd F(4x4, 3x3), written as ONNX graph ops at load time.

Neither ONNX Runtime nor OpenVINO picks a Winograd kernel for these convolutions on a CPU
without AMX: both run direct convolution at the speed of the fp32 FMA units, which is where an
fp32 Mask R-CNN spends most of its time. Winograd's F(4x4, 3x3) computes each 4x4 output tile
from a 6x6 input tile with 36 multiplies per (input, output) channel pair instead of 144:

    Y = A^T [ (G w G^T) . (B^T d B) ] A

Here that is a 6x6-stride-4 convolution with 36 fixed filters per channel (B^T d B), one batched
MatMul over the 36 tile positions ([Co, C] by [C, tiles] each, weights G w G^T computed once),
a [16, 36] MatMul (A^T . A), a DepthToSpace that lays the 4x4 tiles out and the bias. The graph
takes any input size (the transform convolution pads every size to whole tiles; the output is
cropped).

Measured (two threads, fp32, one 256-channel 3x3 conv): 200x336 map 381 -> 201 ms in OpenVINO,
372 -> 193 ms in ONNX Runtime; 50x84 24 -> 17 ms; 100 mask RoIs of 14x14 103 -> 86 ms. With 32
or 64 channels the transforms cost more than they save (43 -> 62 ms), hence MIN_CHANNELS.
Rounding: the transforms' constants (up to 8 and 1/24) cost a few bits: about 1e-5 of the
output's scale per conv in fp32. bf16 and int8 have too few bits for that, so only fp32 models
are rewritten.

A conv's bias, and the BatchNormalization or constant Add that follows it alone, are folded into
the transformed weights and one bias, which a unit-weight depthwise 1x1 conv adds (see
_winograd_nodes for why not an Add).
"""
import numpy as np

from .onnx_graph import GraphIndex, InitializerWriter, attributes, remove_unused

MIN_CHANNELS = 128  # both input and output channels; below this direct convolution is faster

_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float64)

_PREFIX = 'winograd_f4x4_3x3'


def transformed_weights(weight):
    """G w G^T for a [Co, C, 3, 3] weight: [36, 1, Co, C] (tile position first)."""
    co, c = weight.shape[:2]
    u = np.einsum('ap,bq,ocpq->aboc', _G, _G, weight.astype(np.float64), optimize=True)
    return u.reshape(36, 1, co, c).astype(np.float32)


def input_transform_filters():
    """B^T d B as 36 filters of one 6x6 tile: [36, 1, 6, 6]."""
    return np.einsum('ai,bj->abij', _BT, _BT).reshape(36, 1, 6, 6).astype(np.float32)


def output_transform():
    """A^T m A as a [16, 36] matrix: 4x4 outputs (row-major) from 6x6 products."""
    return np.einsum('ia,jb->ijab', _AT, _AT).reshape(16, 36).astype(np.float32)


def _plain_3x3(conv, g, min_channels):
    """The conv's constant weight (and bias) if it is a 3x3, stride 1, pad 1, ungrouped,
    undilated convolution with at least `min_channels` channels in and out; else None."""
    attrs = attributes(conv)
    weight = g.constant(conv.input[1]) if len(conv.input) > 1 else None
    if (weight is None or weight.dtype != np.float32 or weight.ndim != 4
            or weight.shape[2:] != (3, 3)
            or min(weight.shape[:2]) < min_channels
            or attrs.get('group', 1) != 1
            or list(attrs.get('strides', [1, 1])) != [1, 1]
            or list(attrs.get('dilations', [1, 1])) != [1, 1]
            or list(attrs.get('pads', [0, 0, 0, 0])) != [1, 1, 1, 1]
            or attrs.get('auto_pad', b'NOTSET') not in (b'NOTSET', 'NOTSET')):
        return None
    bias = np.zeros(weight.shape[0])
    if len(conv.input) > 2 and conv.input[2]:
        value = g.constant(conv.input[2])
        if value is None:
            return None
        bias = value.astype(np.float64)
    return weight.astype(np.float64), bias


def _fold_follower(conv, weight, bias, g):
    """Fold the BatchNormalization or constant per-channel Add that alone consumes the conv's
    output into (weight, bias). Returns (weight, bias, output name, folded node or None)."""
    output = conv.output[0]
    follower = g.only_consumer(output)
    channels = weight.shape[0]
    if follower is not None and follower.op_type == 'Add':
        other = follower.input[1] if follower.input[0] == output else follower.input[0]
        value = g.constant(other)
        if value is not None and value.shape in ((1, channels, 1, 1), (channels, 1, 1)):
            return weight, bias + value.reshape(channels), follower.output[0], follower
    if (follower is not None and follower.op_type == 'BatchNormalization'
            and len(follower.output) == 1
            and not attributes(follower).get('training_mode', 0)):
        params = [g.constant(name) for name in follower.input[1:5]]
        if all(p is not None and p.shape == (channels,) for p in params):
            gamma, beta, mean, variance = (p.astype(np.float64) for p in params)
            scale = gamma / np.sqrt(variance + attributes(follower).get('epsilon', 1e-5))
            return (weight * scale[:, None, None, None], (bias - mean) * scale + beta,
                    follower.output[0], follower)
    return weight, bias, output, None


def _winograd_nodes(x, weight, bias, output, tag, w):
    """Nodes computing conv(x, weight, pad 1) + bias into `output`, for any input size."""
    from onnx import helper
    co, c = weight.shape[:2]
    filters = w.constant(f'{_PREFIX}/input_transform', input_transform_filters())
    a_matrix = w.constant(f'{_PREFIX}/output_transform', output_transform())
    u = w.constant(f'{tag}/weights', transformed_weights(weight))
    b = w.constant(f'{tag}/bias', bias.astype(np.float32))
    unit = w.constant(f'{_PREFIX}/unit_{co}', np.ones((co, 1, 1, 1), np.float32))
    t = lambda name: f'{tag}/{name}'  # noqa: E731
    return [
        # every channel as its own one-channel image; pads 1 before and 4 after give
        # ceil(H / 4) x ceil(W / 4) 6x6 tiles at stride 4 for any H, W
        helper.make_node('Reshape', [x, w.ints('channels_as_images', [-1, 1, 0, 0])],
                         [t('images')]),
        helper.make_node('Conv', [t('images'), filters], [t('tiles')], kernel_shape=[6, 6],
                         strides=[4, 4], pads=[1, 1, 4, 4]),             # [N*C, 36, h, w]
        helper.make_node('Shape', [t('tiles')], [t('tiles_shape')]),
        helper.make_node('Slice', [t('tiles_shape'), w.ints('two', [2]), w.ints('four', [4])],
                         [t('tile_grid')]),                              # [h, w]
        helper.make_node('Concat', [w.ints(f'split_channels_{c}', [-1, c, 36]), t('tile_grid')],
                         [t('split_shape')], axis=0),
        helper.make_node('Reshape', [t('tiles'), t('split_shape')], [t('split')]),
        helper.make_node('Transpose', [t('split')], [t('by_position')],
                         perm=[2, 0, 1, 3, 4]),                          # [36, N, C, h, w]
        helper.make_node('Reshape', [t('by_position'), w.ints('flat_tiles', [0, 0, 0, -1])],
                         [t('v')]),                                      # [36, N, C, h*w]
        helper.make_node('MatMul', [u, t('v')], [t('m')]),               # [36, N, Co, h*w]
        helper.make_node('Reshape', [t('m'), w.ints('by_product', [36, -1])], [t('m36')]),
        helper.make_node('MatMul', [a_matrix, t('m36')], [t('y16')]),    # [16, N*Co*h*w]
        helper.make_node('Concat', [w.ints(f'split_outputs_{co}', [16, -1, co]),
                                    t('tile_grid')], [t('y_shape')], axis=0),
        helper.make_node('Reshape', [t('y16'), t('y_shape')], [t('y5')]),  # [16, N, Co, h, w]
        helper.make_node('Transpose', [t('y5')], [t('y5_images')], perm=[1, 0, 2, 3, 4]),
        helper.make_node('Concat', [w.ints(f'block_channels_{co}', [-1, 16 * co]),
                                    t('tile_grid')], [t('blocks_shape')], axis=0),
        helper.make_node('Reshape', [t('y5_images'), t('blocks_shape')], [t('blocks')]),
        helper.make_node('DepthToSpace', [t('blocks')], [t('padded')], blocksize=4,
                         mode='DCR'),                                    # [N, Co, 4h, 4w]
        helper.make_node('Shape', [x], [t('input_shape')]),
        helper.make_node('Slice', [t('input_shape'), w.ints('two', [2]), w.ints('four', [4])],
                         [t('input_size')]),
        helper.make_node('Slice', [t('padded'), w.ints('zeros', [0, 0]), t('input_size'),
                                   w.ints('spatial_axes', [2, 3])], [t('cropped')]),
        # the bias as a 1x1 depthwise conv with unit weights (exact): ending in a convolution
        # keeps OpenVINO's blocked layout for the consumers (after an Add the map stays
        # planar, and RoIAlign on the FPN levels took 0.22 s instead of 0.01 s)
        helper.make_node('Conv', [t('cropped'), unit, b], [output], group=co,
                         kernel_shape=[1, 1]),
    ]


def rewrite(model, min_channels=MIN_CHANNELS):
    """Replace, in place, every plain 3x3 convolution of `model` (an fp32 onnx ModelProto) with
    at least `min_channels` input and output channels by its Winograd F(4x4, 3x3) form. Returns
    how many were replaced."""
    graph = model.graph
    g = GraphIndex(graph)
    w = InitializerWriter(graph, _PREFIX)
    folded = set()
    nodes = []
    count = 0
    for node in graph.node:
        if id(node) in folded:
            continue
        plain = _plain_3x3(node, g, min_channels) if node.op_type == 'Conv' else None
        if plain is None:
            nodes.append(node)
            continue
        weight, bias, output, follower = _fold_follower(node, *plain, g)
        if follower is not None:
            folded.add(id(follower))
        nodes.extend(_winograd_nodes(node.input[0], weight, bias, output,
                                     f'{_PREFIX}/{count}', w))
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    remove_unused(graph)
    return count

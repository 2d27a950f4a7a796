"""Legacy anchors (fluid `anchor_generator`, as used by the legacy FPNRPNHead).

For stride s, size S and aspect ratio r the legacy op builds a base box of
`w0 = round(sqrt(s*s / r))`, `h0 = round(w0 * r)` (C rounding: half away from zero), scales it
by S / s, and centres it at `i * s + (s - 1) / 2` with inclusive corners `centre +- (w - 1) / 2`.
ppdet's generator uses the exact `sqrt(S*S / r)` and centres at `(i + offset) * s`: for ratio
0.5 at size 32 the legacy anchor is 48x24 pixels, ppdet's 45.3x22.6.
"""
import math

import paddle
from ppdet.core.workspace import register, serializable
from ppdet.modeling.proposal_generator.anchor_generator import AnchorGenerator


def c_round(value):
    """C's round() for non-negative values (NumPy/Python round half to even)."""
    return math.floor(value + 0.5)


@register
@serializable
class LegacyAnchorGenerator(AnchorGenerator):
    def _calculate_anchors(self, num_features):
        sizes = self._broadcast_params(self.anchor_sizes, num_features)
        ratios = self._broadcast_params(self.aspect_ratios, num_features)
        cell_anchors = []
        for level_sizes, level_ratios, stride in zip(sizes, ratios, self.strides):
            boxes = []
            for ratio in level_ratios:      # legacy order within a cell: ratio, then size
                for size in level_sizes:
                    base_w = c_round(math.sqrt(stride * stride / ratio))
                    base_h = c_round(base_w * ratio)
                    half_w = 0.5 * (size / stride * base_w - 1)
                    half_h = 0.5 * (size / stride * base_h - 1)
                    boxes.append([-half_w, -half_h, half_w, half_h])
            cell_anchors.append(paddle.to_tensor(boxes, dtype='float32'))
        for t in cell_anchors:
            self.register_buffer(t.name, t, persistable=False)
        return cell_anchors

    def _create_grid_offsets(self, size, stride, offset):
        # cell centres at i * stride + (stride - 1) / 2 (`offset` is not used)
        centre = 0.5 * (stride - 1)
        shifts_x = paddle.arange(size[1], dtype='float32') * stride + centre
        shifts_y = paddle.arange(size[0], dtype='float32') * stride + centre
        shift_y, shift_x = paddle.meshgrid(shifts_y, shifts_x)
        return paddle.reshape(shift_x, [-1]), paddle.reshape(shift_y, [-1])

"""Export-time rewrites that let Paddle Inference 3.3.1 run our detectors with oneDNN.

Two graph forms break the oneDNN path; both are rewritten into the same function with op forms
oneDNN accepts. Call `make_onednn_safe(model)` on the eval-mode model before `paddle.jit.to_static`.

1. FPN's `nearest_interp`. Root cause: `onednn_placement_pass` moves every `pd_op.nearest_interp` /
`pd_op.bilinear_interp` to the oneDNN dialect. Their `scale` attribute is declared `double[]`
(`pir::ArrayAttribute<pir::DoubleAttribute>`), and the oneDNN instruction's attribute converter
(`ConvertPirAttribute2RuntimeAttribute` in `onednn_instruction.cc`) has no case for that declared
type, so building the predictor's instruction fails whatever the values are (an empty `scale`, e.g.
`size=`-driven resizing, fails too). No config switch keeps a single op off oneDNN in the PIR
executor (`set_onednn_op` is not consulted by the placement pass), so the fix is in the graph:
FPN's 2x nearest upsampling is exported as unsqueeze -> expand -> flatten, which is the same
function exactly (each pixel copied into a 2x2 block) and whose attributes are all integers.

2. The GC block's LayerNorm over [C/r, 1, 1] (`begin_norm_axis=1` on a 4-D tensor). oneDNN's
layer_norm kernel accepts only the last axis ("MKL-DNN Layer Norm supports only last logical
axis"). `LastAxisLayerNorm` flattens the normalised dims into one last axis, normalises, and
restores the shape: same statistics, same parameters (Paddle stores LayerNorm weights flat).
"""

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from ppdet.modeling.necks.fpn import FPN

# Ops that `onednn_placement_pass` places on oneDNN and whose declared attributes the oneDNN
# instruction cannot convert in Paddle 3.3.1.
ONEDNN_UNSAFE_OPS = ('nearest_interp', 'bilinear_interp')


def upsample_nearest_2x(x):
    """[N, C, H, W] -> [N, C, 2H, 2W], equal to `F.interpolate(x, scale_factor=2, 'nearest')`."""
    x = paddle.unsqueeze(x, axis=[3, 5])                  # [N, C, H, 1, W, 1]
    x = paddle.expand(x, shape=[-1, -1, -1, 2, -1, 2])    # [N, C, H, 2, W, 2]
    x = paddle.flatten(x, start_axis=4, stop_axis=5)      # [N, C, H, 2, 2W]
    return paddle.flatten(x, start_axis=2, stop_axis=3)   # [N, C, 2H, 2W]


class OneDNNSafeFPN(FPN):
    """ppdet's FPN with the top-down upsampling done by `upsample_nearest_2x`.

    Same parameters, same outputs; only the ops in an exported graph differ. The rest of the
    forward pass follows ppdet's FPN.forward (ppdet 2.6 and later share it).
    """

    def forward(self, body_feats):
        laterals = [conv(feat) for conv, feat in zip(self.lateral_convs, body_feats)]
        for lvl in range(len(laterals) - 1, 0, -1):
            laterals[lvl - 1] = laterals[lvl - 1] + upsample_nearest_2x(laterals[lvl])
        fpn_output = [self.fpn_convs[lvl](laterals[lvl]) for lvl in range(len(laterals))]
        if self.extra_stage > 0:
            if not self.has_extra_convs:
                fpn_output.append(paddle.nn.functional.max_pool2d(fpn_output[-1], 1, stride=2))
            else:
                source = body_feats[-1] if self.use_c5 else fpn_output[-1]
                fpn_output.append(self.fpn_convs[len(laterals)](source))
                for i in range(1, self.extra_stage):
                    if self.relu_before_extra_convs:
                        fpn_output.append(self.fpn_convs[len(laterals) + i](
                            paddle.nn.functional.relu(fpn_output[-1])))
                    else:
                        fpn_output.append(self.fpn_convs[len(laterals) + i](fpn_output[-1]))
        return fpn_output


class LastAxisLayerNorm(nn.LayerNorm):
    """nn.LayerNorm computed over one flattened last axis (the only form oneDNN runs)."""

    def forward(self, x):
        normalized_dims = len(self._normalized_shape)
        if normalized_dims == 1:
            return super().forward(x)
        kept_dims = x.ndim - normalized_dims
        flat = paddle.flatten(x, start_axis=kept_dims)
        flat = F.layer_norm(flat, flat.shape[-1:], self.weight, self.bias, self._epsilon)
        # 0 = "copy this dim from the input": the kept leading dims are unchanged.
        return paddle.reshape(flat, [0] * kept_dims + list(self._normalized_shape))


def make_onednn_safe(model):
    """Switch, in place, every plain ppdet `FPN` in `model` to `OneDNNSafeFPN` and every
    multi-axis `nn.LayerNorm` to `LastAxisLayerNorm`. Returns {class name: number switched}."""
    switched = {'FPN': 0, 'LayerNorm': 0}
    for layer in model.sublayers(include_self=True):
        if type(layer) is FPN:
            layer.__class__ = OneDNNSafeFPN
            switched['FPN'] += 1
        elif type(layer) is nn.LayerNorm and len(layer._normalized_shape) > 1:
            layer.__class__ = LastAxisLayerNorm
            switched['LayerNorm'] += 1
    return switched


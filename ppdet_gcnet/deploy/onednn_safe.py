"""Keep `nearest_interp` out of exported graphs, so Paddle Inference's oneDNN path can run them.

Root cause (Paddle 3.3.1): `onednn_placement_pass` moves every `pd_op.nearest_interp` /
`pd_op.bilinear_interp` to the oneDNN dialect. Their `scale` attribute is declared `double[]`
(`pir::ArrayAttribute<pir::DoubleAttribute>`), and the oneDNN instruction's attribute converter
(`ConvertPirAttribute2RuntimeAttribute` in `onednn_instruction.cc`) has no case for that declared
type, so building the predictor's instruction fails whatever the values are (an empty `scale`, e.g.
`size=`-driven resizing, fails too). No config switch keeps a single op off oneDNN in the PIR
executor (`set_onednn_op` is not consulted by the placement pass), so the fix is in the graph:
FPN's 2x nearest upsampling is exported as unsqueeze -> expand -> flatten, which is the same
function exactly (each pixel copied into a 2x2 block) and whose attributes are all integers.
"""

import paddle
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


def make_onednn_safe(model):
    """Switch every plain ppdet `FPN` inside `model` to `OneDNNSafeFPN`, in place; returns the
    number switched. Call it on the eval-mode model right before `paddle.jit.to_static`."""
    switched = 0
    for layer in model.sublayers(include_self=True):
        if type(layer) is FPN:
            layer.__class__ = OneDNNSafeFPN
            switched += 1
    return switched


def find_onednn_unsafe_ops(model_json_path):
    """Names of ops in an exported PIR `model.json` that oneDNN cannot run (see module doc)."""
    with open(model_json_path) as f:
        text = f.read()
    found = set()
    for op in ONEDNN_UNSAFE_OPS:
        # Ops are serialised as {"#": "1.<op name>", ...}.
        if f'"1.{op}"' in text or f'"1.{op}_"' in text:
            found.add(op)
    return sorted(found)

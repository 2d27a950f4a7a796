"""Export-time form of GC bottlenecks that pools the context from the last conv's input.

In a bottleneck the GC block acts on `x = BN(conv1x1(y))`, an affine map of the 3x3 conv's output
`y`, which has a quarter of x's channels: `x_j = W y_j + b` with the BatchNorm folded into `W`, `b`.
Because the attention weights sum to one, the context is the same affine map of y's context:

    logits_j = w_k . x_j + b_k   = (w_k W) . y_j + (w_k . b + b_k)   (a 1x1 map of y)
    sum_j a_j x_j                = W (sum_j a_j y_j) + b

So the block can read y instead of x. Under oneDNN this matters: x comes out of the fused
conv+BN in a blocked layout, the context matmul reorders it to a plain one first (one full pass
over a C x H x W map per block), and because x then has several consumers the shortcut add no
longer fuses into the conv. Pooling from y reorders a map 4x smaller, and x's only consumer is
the conv's own residual add again (below: x never leaves the fused conv).
Same function (float rounding aside); the tests compare it with the original in dygraph and on
the exported model. Basic blocks (ResNet18/34, a 3x3 last conv) keep the original form.

The fusion is written so that Paddle Inference's oneDNN bf16 passes keep the whole block in bf16
(read from the optimised program, Paddle 3.3.1). Their bf16 op list has `add`, `multiply`,
`reshape`, `softmax`, `matmul`, `conv2d`, but neither `flatten` nor `fused_elementwise_add`, and an
op next to an fp32 op is turned back to fp32:
- `relu((conv(y) + short) + t)` fuses the add and relu into `fused_elementwise_add`, which runs
  in fp32: the full-size map was converted to fp32 for it, and the big 1x1 conv before it ran in
  fp32 too. Written `relu(conv(y) + (short + t))`, the broadcast add stays a bf16 `add` and
  conv + residual + relu fuse into one bf16 conv, as in the control.
- `channel_mul`: `relu(conv(y) * s + short)` with `s = sigmoid(t) > 0` equals
  `s * relu(conv(y) + short / s)`, so conv + residual + relu fuse again and the two broadcast
  multiplies stay bf16. `1 / s = 1 + exp(-t)`; t is clipped at -30 first so that it stays finite
  (sigmoid(-30) = 9e-14: the clipped value changes the output by less than 1e-13 of it).
- The context is pooled through `reshape` (a bf16 op), not `flatten`, so y reaches the matmul
  in bf16 instead of through a full-size bf16 -> fp32 pass; the attention logits are a matmul on
  that same reshaped y (oneDNN's bf16 conv with one output channel cost about as much as the
  block's broadcast add).
In fp32 the op count is the same as before (one or two broadcast passes over the map per block).
"""
import paddle
import paddle.nn.functional as F
from ppdet.modeling.backbones.resnet import BottleNeck

# channel_mul logits are clipped here so that 1 / sigmoid stays finite (see above).
MUL_LOGIT_MIN = -30.0


def _folded_conv_norm(conv_norm):
    """(weight [C, Cin], bias [C]) of an eval-mode ConvNormLayer's 1x1 conv with its BN folded."""
    conv, norm = conv_norm.conv, conv_norm.norm
    if conv.weight.shape[2:] != [1, 1] or conv._groups != 1:
        raise ValueError(f"lean GC form needs a 1x1 conv before the GC block, got kernel "
                         f"{conv.weight.shape[2:]} groups {conv._groups}")
    scale = norm.weight / paddle.sqrt(norm._variance + norm._epsilon)
    weight = conv.weight[:, :, 0, 0] * scale.unsqueeze(1)
    bias = norm.bias - norm._mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return weight, bias


class LeanGCBottleNeck(BottleNeck):
    """ppdet's BottleNeck with its GC block fed from branch2c's input (see module docstring).
    Built by `use_lean_gc`; the folded constants are buffers, saved with the export."""

    def _lean_context(self, y):
        flat = paddle.reshape(y, [0, 0, -1])                                    # [N, Cin, HW]
        # the logits as a matmul on the same flat y (a 1-output-channel conv is slow in bf16)
        logits = paddle.matmul(self.lean_mask_weight, flat) + self.lean_mask_bias  # [N,1,HW]
        attention = F.softmax(logits, axis=2)
        pooled = paddle.matmul(flat, attention, transpose_y=True)
        # [N, Cin, 1] -> the context of x: [N, C, 1, 1]
        return F.conv2d(paddle.reshape(pooled, [0, 0, 1, 1]), self.lean_weight, self.lean_bias)

    def forward(self, inputs):
        gc = self.gc_block
        y = self.branch2b(self.branch2a(inputs))
        context = self._lean_context(y)
        short = inputs if self.shortcut else self.short(inputs)
        if gc.channel_mul_conv is None:
            # the broadcast add on the shortcut: conv + residual + relu fuse into one op
            return F.relu(self.branch2c(y) + (short + gc.channel_add_conv(context)))
        # relu(x * s + a + short) = s * relu(x + (short + a) / s), s = sigmoid(t) > 0
        t = paddle.clip(gc.channel_mul_conv(context), min=MUL_LOGIT_MIN)
        residual = short if gc.channel_add_conv is None else short + gc.channel_add_conv(context)
        residual = residual * (1.0 + paddle.exp(-t))                           # / sigmoid(t)
        return F.relu(self.branch2c(y) + residual) * F.sigmoid(t)


def _remove_gc_hook(conv_norm):
    """Drop the forward post-hook GCResNet put on the last conv + norm (the lean forward calls
    the GC block's parts itself)."""
    from ppdet_gcnet.modeling.gc_resnet import _apply_context
    for key, hook in list(conv_norm._forward_post_hooks.items()):
        if hook is _apply_context:
            del conv_norm._forward_post_hooks[key]


def use_lean_gc(model):
    """Switch, in place, every eval-mode ppdet BottleNeck carrying an attention-pooling GC block
    (`GCResNet`) to `LeanGCBottleNeck`. Call after the weights are final (the BN is folded into
    constants here). Returns the number of blocks switched."""
    switched = 0
    for layer in model.sublayers(include_self=True):
        gc = getattr(layer, 'gc_block', None)
        if type(layer) is not BottleNeck or gc is None or gc.pooling_type != 'att' \
                or layer.std_senet or getattr(layer.branch2c, 'dcn_v2', False):
            continue
        if layer.training:
            raise ValueError("use_lean_gc folds BatchNorm statistics: call it on an eval-mode "
                             "model")
        with paddle.no_grad():
            weight, bias = _folded_conv_norm(layer.branch2c)
            mask_w = gc.conv_mask.weight[:, :, 0, 0]                          # [1, C]
            mask_weight = paddle.matmul(mask_w, weight)                       # [1, Cin]
            mask_bias = paddle.matmul(mask_w, bias.unsqueeze(1))[:, 0] + gc.conv_mask.bias
        layer.register_buffer('lean_weight', weight.unsqueeze(-1).unsqueeze(-1).detach())
        layer.register_buffer('lean_bias', bias.detach())
        layer.register_buffer('lean_mask_weight', mask_weight.detach())           # [1, Cin]
        layer.register_buffer('lean_mask_bias', mask_bias.detach())
        _remove_gc_hook(layer.branch2c)
        layer.__class__ = LeanGCBottleNeck
        switched += 1
    return switched

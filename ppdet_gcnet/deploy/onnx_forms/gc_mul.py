"""One-image form of the lean GC bottleneck's `channel_mul` fusion: the scale folded into the
last convolution's weights.

The lean block (`ppdet_gcnet.deploy.lean_gc`) pools the context from the last conv's input y,
so the channel scale `s = sigmoid(t)` is known before that conv runs. With one image per run
(the ONNX forms' contract) the scale is per output channel of a single conv, and

    relu((W y + b) * s + a + short) = relu(conv(y, W * s) + (short + (b * s + a)))

is the control's own conv + residual + relu, which ONNX Runtime and OpenVINO fuse into one
kernel (the bias joins the shortcut: OpenVINO leaves a conv with a run-time bias unfused). The
lean form's two full-map multiplies per block (`short / s` and `* s`) go away; what remains is
scaling a [C, Cin] weight, a few hundred kilobytes, per block and run.
"""
import paddle
import paddle.nn.functional as F

from ..lean_gc import LeanGCBottleNeck


class OneImageLeanGCBottleNeck(LeanGCBottleNeck):
    """LeanGCBottleNeck whose `channel_mul` scale multiplies the last conv's folded weights.
    Valid for a batch of one image only: the weights become that image's."""

    def forward(self, inputs):
        gc = self.gc_block
        if gc.channel_mul_conv is None:
            return super().forward(inputs)
        y = self.branch2b(self.branch2a(inputs))
        context = self._lean_context(y)
        short = inputs if self.shortcut else self.short(inputs)
        scale = paddle.reshape(F.sigmoid(gc.channel_mul_conv(context)), [-1])      # [C]
        weight = self.lean_weight * paddle.reshape(scale, [-1, 1, 1, 1])
        bias = self.lean_bias * scale
        if gc.channel_add_conv is not None:
            bias = bias + paddle.reshape(gc.channel_add_conv(context), [-1])
        return F.relu(F.conv2d(y, weight) + (short + paddle.reshape(bias, [1, -1, 1, 1])))

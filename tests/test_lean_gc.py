"""The lean GC bottleneck form computes what the original computes: in dygraph, and in the model
Paddle Inference runs (oneDNN fp32, and bf16 where the CPU has it) after export."""
import numpy as np
import paddle
import pytest

import ppdet_gcnet  # noqa: F401  (registers GCResNet, applies compat)
from ppdet_gcnet.deploy import make_onednn_safe
from ppdet_gcnet.deploy.lean_gc import LeanGCBottleNeck, use_lean_gc
from ppdet_gcnet.modeling.gc_resnet import GCResNet

pytestmark = pytest.mark.ppdet  # builds on PaddleDetection's ResNet: in both test legs

FUSIONS = (['channel_add'], ['channel_mul'], ['channel_mul', 'channel_add'])


class Backbone(paddle.nn.Layer):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return self.net({'image': image})


def gc_resnet(fusion, depth=50, seed=0):
    """A GCResNet whose BatchNorms and GC transforms are far from their initial values (zero last
    convs and unit statistics would make any context computation look right)."""
    paddle.seed(seed)
    net = GCResNet(depth=depth, variant='d', gc_stages=[1, 2, 3], gc_fusion_types=fusion,
                   freeze_at=-1, freeze_norm=False)
    rng = np.random.RandomState(seed)
    for layer in net.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            c = layer._mean.shape[0]
            layer._mean.set_value((rng.randn(c) * 0.2).astype('float32'))
            layer._variance.set_value((rng.rand(c) + 0.5).astype('float32'))
            layer.weight.set_value((rng.rand(c) + 0.5).astype('float32'))
            layer.bias.set_value((rng.randn(c) * 0.2).astype('float32'))
    for block in net.gc_blocks:
        for transform in (block.channel_add_conv, block.channel_mul_conv):
            if transform is not None:
                last = transform[3]
                last.weight.set_value((rng.randn(*last.weight.shape) * 0.1).astype('float32'))
                last.bias.set_value((rng.randn(*last.bias.shape) * 0.1).astype('float32'))
    net.eval()
    return net


def relative_error(reference, other):
    return max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in zip(reference, other))


@pytest.mark.parametrize('fusion', FUSIONS, ids='+'.join)
def test_lean_form_equals_original_in_dygraph(fusion):
    net = gc_resnet(fusion)
    image = paddle.to_tensor(np.random.RandomState(1).randn(2, 3, 64, 96).astype('float32'))
    with paddle.no_grad():
        reference = [o.numpy() for o in net({'image': image})]
        assert use_lean_gc(net) == 13  # res3-res5 of a ResNet50: 4 + 6 + 3 bottlenecks
        lean = [o.numpy() for o in net({'image': image})]
    assert sum(isinstance(m, LeanGCBottleNeck) for m in net.sublayers()) == 13
    # The context actually differs between images and blocks (else the test proves nothing).
    # Float rounding through 13 blocks (channel_mul divides by the gate and multiplies back).
    assert relative_error(reference, lean) < 5e-5


def _predict(prefix, image, bf16=False):
    from paddle import inference
    config = inference.Config(prefix + '.json', prefix + '.pdiparams')
    config.disable_gpu()
    config.enable_onednn()
    if bf16:
        config.enable_onednn_bfloat16()
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    outputs = []
    for x in image:  # a second, different image: no state may leak from the first run
        handle = predictor.get_input_handle('image')
        handle.reshape(x.shape)
        handle.copy_from_cpu(x)
        predictor.run()
        outputs = [predictor.get_output_handle(n).copy_to_cpu()
                   for n in predictor.get_output_names()]
    return outputs


@pytest.mark.parametrize('fusion', FUSIONS[::2], ids='+'.join)
def test_lean_form_equals_original_after_export(tmp_path, fusion):
    """oneDNN fp32 (and, for the form with both fusions, bf16 where the CPU has it): the lean
    export gives what the original export gives, and fp32 what dygraph gives. channel_add alone
    and both fusions cover every branch of the lean forward."""
    from deploy.python.cpu_features import has_bf16
    rng = np.random.RandomState(2)
    images = [rng.randn(1, 3, 64, 96).astype('float32') for _ in range(2)]
    spec = [paddle.static.InputSpec([None, 3, None, None], 'float32', 'image')]
    prefixes = {}
    for form in ('original', 'lean'):
        net = gc_resnet(fusion)
        make_onednn_safe(net)
        if form == 'lean':
            use_lean_gc(net)
        else:
            with paddle.no_grad():
                dygraph = [o.numpy() for o in net({'image': paddle.to_tensor(images[1])})]
        prefixes[form] = str(tmp_path / form / 'model')
        paddle.jit.save(paddle.jit.to_static(Backbone(net), input_spec=spec, full_graph=True),
                        prefixes[form])
    original, lean = (_predict(prefixes[f], images) for f in ('original', 'lean'))
    assert relative_error(dygraph, original) < 1e-4
    assert relative_error(dygraph, lean) < 1e-4
    assert relative_error(original, lean) < 1e-4
    if has_bf16() and 'channel_mul' in fusion:
        original_bf16, lean_bf16 = (_predict(prefixes[f], images, bf16=True)
                                    for f in ('original', 'lean'))
        # bf16 rounding through a ResNet50: both forms stay as close to fp32 as each other
        assert relative_error(original, lean_bf16) < max(
            0.1, 2 * relative_error(original, original_bf16))


def test_lean_mul_form_with_saturated_gates():
    """channel_mul computes relu(x * s + short) as s * relu(x + short / s): gates sigmoid(t)
    that underflow (t far below zero) must still give the original's output, not inf or NaN."""
    net = gc_resnet(['channel_mul', 'channel_add'])
    for block in net.gc_blocks:
        last = block.channel_mul_conv[3]
        bias = last.bias.numpy()
        bias[::2] = -200.0  # sigmoid = 0 in float32 for half the channels
        last.bias.set_value(bias)
    image = paddle.to_tensor(np.random.RandomState(3).randn(1, 3, 64, 96).astype('float32'))
    with paddle.no_grad():
        reference = [o.numpy() for o in net({'image': image})]
        use_lean_gc(net)
        lean = [o.numpy() for o in net({'image': image})]
    assert all(np.isfinite(o).all() for o in lean)
    assert relative_error(reference, lean) < 5e-5


def test_basic_blocks_and_training_mode_are_refused_or_left_alone():
    assert use_lean_gc(gc_resnet(['channel_add'], depth=18)) == 0  # 3x3 last conv: no fold
    net = gc_resnet(['channel_add'])
    net.train()
    with pytest.raises(ValueError, match='eval-mode'):
        use_lean_gc(net)

"""The FPN's 2x nearest upsampling becomes one ONNX `Resize` in `model.onnx`: the converted
unsqueeze/expand/flatten pattern is replaced (and nothing else), and ONNX Runtime and OpenVINO
then copy each pixel into a 2x2 block exactly, at even and odd sizes; the real exports hold one
Resize per FPN level."""

import numpy as np
import paddle
import pytest

from ppdet_gcnet.deploy.onednn_safe import upsample_nearest_2x
from tests.test_onnx_export import paddle_inference


class Upsampler(paddle.nn.Layer):
    """conv, then the oneDNN-safe 2x upsampling (or, with `factor` 3, the same construction at
    3x, which the rewrite must leave alone)."""

    def __init__(self, factor=2):
        super().__init__()
        self.conv = paddle.nn.Conv2D(8, 16, 1)
        self.factor = factor

    def forward(self, image):
        x = self.conv(image)
        if self.factor == 2:
            return x, upsample_nearest_2x(x)
        up = paddle.expand(paddle.unsqueeze(x, axis=[3, 5]), shape=[-1, -1, -1, 3, -1, 3])
        up = paddle.flatten(paddle.flatten(up, start_axis=4, stop_axis=5), 2, 3)
        return x, up


def _export(directory, factor):
    pytest.importorskip('paddle2onnx')
    from ppdet_gcnet.deploy.onnx_export import write_onnx
    paddle.seed(0)
    spec = [paddle.static.InputSpec([None, 8, None, None], 'float32', 'image')]
    paddle.jit.save(paddle.jit.to_static(Upsampler(factor), input_spec=spec, full_graph=True),
                    str(directory / 'model'))
    paddle.disable_static()
    messages = []
    write_onnx(str(directory), log=messages.append)
    import onnx
    return onnx.load(str(directory / 'model.onnx')), messages


def _runtimes(path):
    import onnxruntime
    import openvino
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    compiled = openvino.Core().compile_model(path, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    return {'onnxruntime': lambda x: session.run(None, {'image': x}),
            'openvino': lambda x: list(compiled({'image': x}).values())}


@pytest.mark.parametrize('factor', [2, 3])
def test_upsampling_becomes_one_resize(tmp_path, factor):
    model, messages = _export(tmp_path, factor)
    ops = [node.op_type for node in model.graph.node]
    if factor == 2:
        assert ops.count('Resize') == 1 and 'Expand' not in ops and 'Unsqueeze' not in ops
        resize = model.graph.node[ops.index('Resize')]
        attributes = {a.name: a.s.decode() for a in resize.attribute}
        assert attributes == {'mode': 'nearest', 'coordinate_transformation_mode': 'asymmetric',
                              'nearest_mode': 'floor'}
    else:  # another construction: left as paddle2onnx wrote it
        assert 'Resize' not in ops and 'Expand' in ops
    assert any(f"'nearest_upsampling_as_resize': {int(factor == 2)}" in m for m in messages)
    rng = np.random.RandomState(0)
    for shape in ((1, 8, 5, 7), (1, 8, 8, 12)):  # odd and even sizes
        image = rng.randn(*shape).astype('float32')
        for runtime, run in _runtimes(str(tmp_path / 'model.onnx')).items():
            conv, up = run(image)
            expected = np.repeat(np.repeat(conv, factor, axis=2), factor, axis=3)
            np.testing.assert_array_equal(up, expected, err_msg=runtime)


def test_fpn_exports_hold_one_resize_per_level(tmp_path):
    """An FPN as the export writes it (four levels, three top-down upsamplings): three Resize
    nodes, outputs equal to the Paddle export's (whole models: tests/test_onnx_export.py)."""
    pytest.importorskip('paddle2onnx')
    from ppdet_gcnet.deploy.onednn_safe import OneDNNSafeFPN
    from ppdet_gcnet.deploy.onnx_export import write_onnx

    class Neck(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            channels = [8, 16, 32, 64]
            self.body = paddle.nn.LayerList([paddle.nn.Conv2D(8, c, 1, stride=2 ** i)
                                             for i, c in enumerate(channels)])
            self.fpn = OneDNNSafeFPN(in_channels=channels, out_channel=16)

        def forward(self, image):
            return self.fpn([conv(image) for conv in self.body])

    import ppdet_gcnet  # noqa: F401
    paddle.seed(0)
    spec = [paddle.static.InputSpec([None, 8, None, None], 'float32', 'image')]
    paddle.jit.save(paddle.jit.to_static(Neck(), input_spec=spec, full_graph=True),
                    str(tmp_path / 'model'))
    paddle.disable_static()
    write_onnx(str(tmp_path))
    import onnx
    ops = [n.op_type for n in onnx.load(str(tmp_path / 'model.onnx')).graph.node]
    assert ops.count('Resize') == 3 and 'Expand' not in ops
    image = np.random.RandomState(1).randn(1, 8, 32, 48).astype('float32')
    reference = paddle_inference(str(tmp_path), {'image': image})
    for runtime, run in _runtimes(str(tmp_path / 'model.onnx')).items():
        for ours, theirs in zip(run(image), reference):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg=runtime)

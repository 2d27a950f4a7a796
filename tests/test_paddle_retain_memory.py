"""Paddle Inference with `retain_memory`: tensors keep their memory between runs, so a run takes
no fresh pages from the system (page faults counted by the kernel), computes the same outputs,
and other predictors keep the default."""
import json
import resource

import numpy as np
import pytest

from deploy.python import infer
from deploy.python.errors import DeployError
from deploy.python.image_io import read_image_rgb
from deploy.python.model_files import load_model_files
from deploy.python.predictor import PredictorOptions, create_predictor
from tests.test_deploy_fixtures import (DETECTIONS, deploy_model, dygraph_model,  # noqa: F401
                                        shapes_image, write_image)


@pytest.fixture(scope='module')
def wide_model(tmp_path_factory):
    """An export whose intermediate (64 x 512 x 512 floats, 64 MB) is larger than any block the
    C allocator keeps after it is freed."""
    import paddle
    paddle.seed(0)

    class Wide(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.widen = paddle.nn.Conv2D(3, 64, 1)
            self.narrow = paddle.nn.Conv2D(64, 3, 1)

        def forward(self, image):
            return self.narrow(paddle.nn.functional.relu(self.widen(image)))

    out = tmp_path_factory.mktemp('wide')
    spec = [paddle.static.InputSpec([None, 3, None, None], 'float32', 'image')]
    paddle.jit.save(paddle.jit.to_static(Wide(), input_spec=spec, full_graph=True),
                    str(out / 'model'))
    (out / 'infer_cfg.yml').write_text('Preprocess: []\n')
    return str(out)


def page_faults(run):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    run()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_retained_memory_takes_no_fresh_pages_and_computes_the_same(wide_model):
    import paddle
    flag = 'FLAGS_eager_delete_tensor_gb'
    before = paddle.get_flags([flag])[flag]
    model = load_model_files(wide_model)
    default = create_predictor(model, PredictorOptions(enable_mkldnn=True))
    retained = create_predictor(model, PredictorOptions(enable_mkldnn=True, retain_memory=True))
    rng = np.random.RandomState(0)
    big = {'image': rng.randn(1, 3, 512, 512).astype('float32')}
    for predictor in (retained, default):
        predictor.run_arrays(big)  # the executor is built, oneDNN's primitives made
    assert paddle.get_flags([flag])[flag] == before  # the process default is left as it was
    intermediate_pages = 64 * 512 * 512 * 4 // 4096
    # built after `retained`: the default predictor still frees and re-takes its memory
    faults = {'default': page_faults(lambda: default.run_arrays(big)),
              'retained': page_faults(lambda: retained.run_arrays(big))}
    assert faults['default'] > intermediate_pages, faults
    assert faults['retained'] < intermediate_pages // 10, faults
    # the same outputs, also for a new input of another size (buffers reused or regrown)
    for inputs in (big, {'image': rng.randn(1, 3, 320, 640).astype('float32')},
                   {'image': rng.randn(1, 3, 96, 128).astype('float32')}):
        np.testing.assert_array_equal(retained.run_arrays(inputs)[0],
                                      default.run_arrays(inputs)[0])


def test_retained_memory_detects_the_same(deploy_model, shapes_image, tmp_path):  # noqa: F811
    """infer.py --retain_memory on two images of different sizes: results.json as without it."""
    images = tmp_path / 'images'
    images.mkdir()
    image = read_image_rgb(shapes_image)
    write_image(images / 'a.png', image[:, :, ::-1])
    write_image(images / 'b.png', image[:90, :70, ::-1])
    results = {}
    for flags in ([], ['--retain_memory']):
        out = tmp_path / ('retained' if flags else 'default')
        assert infer.main(['--model_dir', deploy_model[2], '--image_dir', str(images),
                           '--output_dir', str(out), '--threshold', '0', '--save_results',
                           *flags]) == 0
        results[bool(flags)] = json.loads((out / 'results.json').read_text())['images']
    assert [len(i['detections']) for i in results[True]] == [DETECTIONS] * 2
    assert results[True] == results[False]


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_retain_memory_is_paddle_only(backend):
    with pytest.raises(DeployError, match=f'--retain_memory: Paddle Inference only '
                       rf'\(--backend {backend} keeps its buffers'):
        PredictorOptions(backend=backend, retain_memory=True).check()

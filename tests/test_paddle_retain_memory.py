"""Paddle Inference with `retain_memory`: tensors keep their memory between runs, so a run takes
no fresh pages from the system (page faults counted by the kernel), computes the same outputs,
and other predictors keep the default."""
import json
import subprocess
import sys

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


# In a fresh process: whether freed memory goes back to the system depends on what else the
# process has loaded and done (in a long test process a default predictor sometimes takes none).
COUNT_PAGE_FAULTS = """
import json, resource, sys
import numpy as np
from deploy.python.model_files import load_model_files
from deploy.python.predictor import PredictorOptions, create_predictor
model = load_model_files(sys.argv[1])
image = {'image': np.random.RandomState(0).randn(1, 3, 512, 512).astype('float32')}
faults = {}
for name, retain in (('retained', True), ('default', False)):
    predictor = create_predictor(model, PredictorOptions(enable_mkldnn=True, retain_memory=retain))
    predictor.run_arrays(image)  # the executor is built, oneDNN's primitives made
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    predictor.run_arrays(image)
    faults[name] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps(faults))
"""


def test_retained_memory_takes_no_fresh_pages(wide_model, repo_root):
    proc = subprocess.run([sys.executable, '-c', COUNT_PAGE_FAULTS, wide_model], cwd=repo_root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    faults = json.loads(proc.stdout.strip().splitlines()[-1])
    intermediate_pages = 64 * 512 * 512 * 4 // 4096
    # made after `retained`: the default predictor still frees and re-takes its memory
    assert faults['default'] > intermediate_pages, faults
    assert faults['retained'] < intermediate_pages // 10, faults


def test_retained_memory_computes_the_same(wide_model):
    import paddle
    flag = 'FLAGS_eager_delete_tensor_gb'
    before = paddle.get_flags([flag])[flag]
    model = load_model_files(wide_model)
    default = create_predictor(model, PredictorOptions(enable_mkldnn=True))
    retained = create_predictor(model, PredictorOptions(enable_mkldnn=True, retain_memory=True))
    rng = np.random.RandomState(0)
    # the same outputs, also for new inputs of other sizes (buffers reused or regrown)
    for shape in ((1, 3, 512, 512), (1, 3, 320, 640), (1, 3, 96, 128), (1, 3, 512, 512)):
        inputs = {'image': rng.randn(*shape).astype('float32')}
        np.testing.assert_array_equal(retained.run_arrays(inputs)[0],
                                      default.run_arrays(inputs)[0])
    assert paddle.get_flags([flag])[flag] == before  # the process default is left as it was


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

"""Paddle Inference's memory between runs. A run of the default executor frees every tensor after
its last reader; whether the next run takes fresh pages from the system for them (page faults
counted by the kernel) depends on the C allocator. Two ways to reuse them, each checked here:
`keep_freed_memory` (the default on CPU: glibc's malloc keeps what the process frees) and
`retain_memory` (the executor keeps its tensors); both compute the same outputs.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from deploy.python import freed_memory, infer
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


# Page faults are counted in a fresh process: the malloc setting is the process's, and whether
# freed memory goes back to the system depends on what else the process has loaded and done.
# Each predictor listed is made in turn (options as keyword arguments), run twice untimed (the
# executor built, oneDNN's primitives made, the heap grown), then counted over five runs: the
# fewest faults of a run. With malloc keeping freed memory, an occasional run still takes the
# intermediate afresh (16,385 pages in about one run in seven here, up to three in a row; cause
# not found), which the fewest of five sees past; with glibc's defaults every run takes it.
COUNT_PAGE_FAULTS = """
import json, resource, sys
import numpy as np
from deploy.python import freed_memory
from deploy.python.model_files import load_model_files
from deploy.python.predictor import PredictorOptions, create_predictor
model = load_model_files(sys.argv[1])
image = {'image': np.random.RandomState(0).randn(1, 3, 512, 512).astype('float32')}
faults, predictors = {}, {}
for name, options in json.loads(sys.argv[2]):
    predictor = predictors[name] = create_predictor(
        model, PredictorOptions(enable_mkldnn=True, **options))
    predictor.run_arrays(image)
    predictor.run_arrays(image)
    counts = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        predictor.run_arrays(image)
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    faults[name] = min(counts)
print(json.dumps({'faults': faults, 'malloc_keeps': freed_memory.in_effect()}))
"""
INTERMEDIATE_PAGES = 64 * 512 * 512 * 4 // 4096


def count_page_faults(model_dir, repo_root, predictors):
    proc = subprocess.run([sys.executable, '-c', COUNT_PAGE_FAULTS, model_dir,
                           json.dumps(predictors)], cwd=repo_root, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_retained_memory_takes_no_fresh_pages(wide_model, repo_root):
    counted = count_page_faults(wide_model, repo_root, [
        ('retained', {'retain_memory': True, 'keep_freed_memory': False}),
        ('default', {'keep_freed_memory': False})])
    faults = counted['faults']
    # made after `retained`: the other predictor still frees and re-takes its memory
    assert faults['default'] > INTERMEDIATE_PAGES, faults
    assert faults['retained'] < INTERMEDIATE_PAGES // 10, faults
    assert not counted['malloc_keeps']


def test_kept_freed_memory_takes_no_fresh_pages(wide_model, repo_root):
    """The default: glibc's malloc keeps what the executor frees, for every predictor of the
    process from then on (a process setting)."""
    counted = count_page_faults(wide_model, repo_root, [
        ('released', {'keep_freed_memory': False}), ('kept', {}),
        ('released_then', {'keep_freed_memory': False})])
    faults = counted['faults']
    assert faults['released'] > INTERMEDIATE_PAGES, faults  # glibc's defaults: taken afresh
    assert faults['kept'] < INTERMEDIATE_PAGES // 10, faults
    assert faults['released_then'] < INTERMEDIATE_PAGES // 10, faults
    assert counted['malloc_keeps']


def test_keep_freed_memory_leaves_other_c_libraries_alone(monkeypatch):
    """Where the C library is not glibc there is no mallopt to call: nothing is set."""
    monkeypatch.setattr(freed_memory, '_applied', False)
    monkeypatch.setattr(freed_memory.platform, 'libc_ver', lambda: ('', ''))
    monkeypatch.setattr(freed_memory.ctypes, 'CDLL', lambda *a: pytest.fail('loaded libc'))
    assert freed_memory.keep_freed_memory() is False
    assert freed_memory.in_effect() is False


def test_retained_memory_computes_the_same(wide_model):
    import paddle
    flag = 'FLAGS_eager_delete_tensor_gb'
    before = paddle.get_flags([flag])[flag]
    model = load_model_files(wide_model)
    default = create_predictor(model, PredictorOptions(enable_mkldnn=True,
                                                       keep_freed_memory=False))
    retained = create_predictor(model, PredictorOptions(enable_mkldnn=True, retain_memory=True,
                                                        keep_freed_memory=False))
    rng = np.random.RandomState(0)
    # the same outputs, also for new inputs of other sizes (buffers reused or regrown)
    for shape in ((1, 3, 512, 512), (1, 3, 320, 640), (1, 3, 96, 128), (1, 3, 512, 512)):
        inputs = {'image': rng.randn(*shape).astype('float32')}
        np.testing.assert_array_equal(retained.run_arrays(inputs)[0],
                                      default.run_arrays(inputs)[0])
    assert paddle.get_flags([flag])[flag] == before  # the process default is left as it was


def test_memory_options_detect_the_same(deploy_model, shapes_image, tmp_path):  # noqa: F811
    """infer.py --retain_memory, and --keep_freed_memory False, on two images of different
    sizes: results.json as by default."""
    images = tmp_path / 'images'
    images.mkdir()
    image = read_image_rgb(shapes_image)
    write_image(images / 'a.png', image[:, :, ::-1])
    write_image(images / 'b.png', image[:90, :70, ::-1])
    results = {}
    for flags in ([], ['--retain_memory'], ['--keep_freed_memory', 'False']):
        out = tmp_path / (flags[0].strip('-') if flags else 'default')
        assert infer.main(['--model_dir', deploy_model[2], '--image_dir', str(images),
                           '--output_dir', str(out), '--threshold', '0', '--save_results',
                           *flags]) == 0
        results[out.name] = json.loads((out / 'results.json').read_text())['images']
    assert [len(i['detections']) for i in results['default']] == [DETECTIONS] * 2
    assert results['retain_memory'] == results['default']
    assert results['keep_freed_memory'] == results['default']


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_retain_memory_is_paddle_only(backend):
    with pytest.raises(DeployError, match=f'--retain_memory: Paddle Inference only '
                       rf'\(--backend {backend} keeps its buffers'):
        PredictorOptions(backend=backend, retain_memory=True).check()

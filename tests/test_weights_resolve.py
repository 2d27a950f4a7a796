"""resolve_weights end to end against a loopback server: local paths pass through, unknown
URLs are refused, a `.pdparams` entry is fetched and screened, and a legacy archive entry is
downloaded, extracted, converted, cached and accepted by ppdet's own loader."""
import http.server
import io
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest

from ppdet_gcnet.weights import WeightsError, resolve, resolve_weights
from ppdet_gcnet.weights.legacy_names import mask_rcnn_rules
from ppdet_gcnet.weights.manifest import LEGACY_STATIC, PDPARAMS, ModelEntry
from test_weights_convert import legacy_shape
from test_weights_legacy_files import lod_tensor_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_REL = 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml'
FILES = {}        # path -> bytes served
REQUESTS = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        REQUESTS.append(self.path)
        body = FILES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope='module')
def base_url():
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def manifest(monkeypatch, tmp_path, base_url):
    """Point resolve at a test manifest served from loopback, cache in tmp."""
    entries = {}
    monkeypatch.setenv('PPDET_GCNET_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setattr(resolve, 'find_entry',
                        lambda v: next((e for e in entries.values() if v in (e.name, e.url)),
                                       None))
    REQUESTS.clear()

    def add(name, fmt, body, config=None):
        FILES['/' + name] = body
        entries[name] = ModelEntry(name=name.split('.')[0], url=f'{base_url}/{name}',
                                   format=fmt, config=config)
        return entries[name]
    return add


def test_local_paths_pass_through(tmp_path):
    assert resolve_weights(None) is None
    assert resolve_weights('output/x/model_final') == 'output/x/model_final'   # not yet trained
    (tmp_path / 'm.pdparams').write_bytes(b'')
    assert resolve_weights(str(tmp_path / 'm')) == str(tmp_path / 'm')
    assert resolve_weights('~/w.pdparams') == os.path.expanduser('~/w.pdparams')
    (tmp_path / 'legacy.tar').write_bytes(b'')
    with pytest.raises(WeightsError, match='a local archive; convert it first'):
        resolve_weights(str(tmp_path / 'legacy.tar'))


def test_unknown_url_is_refused_in_one_line():
    with pytest.raises(WeightsError, match='not in the weights manifest') as info:
        resolve_weights('https://example.com/some.pdparams')
    assert '\n' not in str(info.value)


def test_pdparams_entry_is_fetched_screened_and_cached(manifest):
    buf = io.BytesIO()
    pickle.dump({'w': np.arange(3, dtype='float32')}, buf, protocol=4)
    entry = manifest('good.pdparams', PDPARAMS, buf.getvalue())
    path = resolve_weights(entry.url)
    assert path.endswith('good.pdparams') and os.path.isfile(path)
    assert resolve_weights(entry.name) == path and REQUESTS == ['/good.pdparams']


class _Evil:
    def __reduce__(self):
        return (os.system, ('true',))


def test_pdparams_that_would_run_code_is_refused(manifest):
    entry = manifest('evil.pdparams', PDPARAMS, pickle.dumps({'x': _Evil()}, protocol=4))
    with pytest.raises(WeightsError, match='refuses to load'):
        resolve_weights(entry.name)


def test_404_from_manifest_url(manifest):
    entry = manifest('gone.pdparams', PDPARAMS, b'')
    del FILES['/gone.pdparams']
    with pytest.raises(WeightsError, match='HTTP 404'):
        resolve_weights(entry.name)


def _legacy_tar_gz():
    """Full legacy name set of the GC add model; zeros except a few known arrays."""
    import ppdet_gcnet  # noqa: F401
    from ppdet.core.workspace import create, load_config
    cfg = load_config(os.path.join(ROOT, CONFIG_REL))
    model = create(cfg['architecture'])
    rules = mask_rcnn_rules()
    rng = np.random.default_rng(0)
    known = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:gz', compresslevel=1) as tar:
        for name, tensor in model.state_dict().items():
            rule = rules[name]
            shape = legacy_shape(rule, tuple(tensor.shape))
            if 'gc_block' in name or 'bbox_score' in name or 'mask_fcn_logits' in name:
                array = rng.standard_normal(shape).astype('float32')
                known[name] = (rule, array)
            else:
                array = np.zeros(shape, 'float32')
            data = lod_tensor_bytes(array)
            info = tarfile.TarInfo('mask_rcnn_r50_vd_fpn_gcb_add_r16_2x/' + rule.legacy_name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), known, model


def test_legacy_archive_is_downloaded_converted_cached_and_loads_in_ppdet(manifest, tmp_path):
    import paddle
    from ppdet.utils.checkpoint import load_weight
    from ppdet.core.workspace import global_config
    body, known, model = _legacy_tar_gz()
    entry = manifest('legacy_gc.tar', LEGACY_STATIC, body, config=CONFIG_REL)
    before = global_config.get('weights')
    global_config['weights'] = 'set-by-the-running-tool'
    try:
        path = resolve_weights(entry.url)
        # conversion built its model elsewhere: the tool's global config is untouched
        assert global_config['weights'] == 'set-by-the-running-tool'
    finally:
        global_config['weights'] = before
    assert path == str(tmp_path / 'cache' / 'legacy_gc' / 'legacy_gc.pdparams')
    assert resolve_weights(entry.name) == path and REQUESTS == ['/legacy_gc.tar']
    leftovers = sorted(os.listdir(tmp_path / 'cache' / 'legacy_gc'))
    assert leftovers == ['legacy_gc.pdparams', 'legacy_gc.pdparams.lock', 'legacy_gc.tar',
                         'legacy_gc.tar.lock']
    load_weight(model, path)          # ppdet's loader takes the returned path as is
    state = model.state_dict()
    for name, (rule, array) in known.items():
        got = state[name].numpy()
        if 'bbox_score' in name:
            array = np.concatenate([array[..., 1:], array[..., :1]], axis=-1)
        elif 'mask_fcn_logits' in name:
            array = array[1:]
        np.testing.assert_array_equal(got, array, err_msg=name)
    assert float(paddle.abs(state['neck.fpn_res2_sum.weight']).sum()) == 0.0


def test_ppdet_scheme_and_names_map_to_the_real_manifest(monkeypatch):
    fetched = []
    monkeypatch.setattr(resolve, 'fetch_entry', lambda entry: fetched.append(entry.name) or 'x')
    resolve_weights('ppdet://models/pretrained/ResNet50_vd_pretrained.pdparams')
    resolve_weights('https://paddlemodels.bj.bcebos.com/object_detection/'
                    'mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x.tar')
    resolve_weights('mask_rcnn_r50_vd_fpn_gcb_add_r16_2x')      # the legacy name is an alias
    assert fetched == ['ResNet50_vd_pretrained', 'mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco',
                       'mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco']


def test_download_tool_needs_a_pin_for_urls_outside_the_manifest(base_url, tmp_path):
    import hashlib
    import subprocess
    import sys
    FILES['/extra.bin'] = b'payload'
    tool = os.path.join(ROOT, 'tools', 'download_weights.py')
    run = lambda *a: subprocess.run([sys.executable, tool, *a, '--cache-dir', str(tmp_path)],
                                    capture_output=True, text=True, timeout=120)
    refused = run(f'{base_url}/extra.bin')
    assert refused.returncode == 2 and 'pin it with --sha256' in refused.stderr
    ok = run(f'{base_url}/extra.bin', '--sha256', hashlib.sha256(b'payload').hexdigest())
    assert ok.returncode == 0, ok.stderr
    path = ok.stdout.strip().splitlines()[-1]
    assert path == str(tmp_path / 'urls' / 'extra.bin') and open(path, 'rb').read() == b'payload'

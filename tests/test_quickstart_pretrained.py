"""The ImageNet fine-tune configs of the shapes quickstart: their backbone weights come through the
verified download (here from a loopback server serving a small stand-in file), the sha256 is
printed for pinning, the file loads into the quickstart model, and without network the training
tool stops with one line."""
import hashlib
import http.server
import os
import socket
import threading

import pytest
import yaml

from tool_runner import ROOT, run_tool

SHAPES = 'configs/gcnet/shapes'
FINETUNE = {
    'ResNet18_vd_pretrained': f'{SHAPES}/mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes_imagenet.yml',
    'ResNet50_vd_pretrained': f'{SHAPES}/mask_rcnn_r50_vd_fpn_gcb_add_r16_shapes_imagenet.yml',
}


def _own_keys(config):
    with open(os.path.join(ROOT, config)) as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize('name', sorted(FINETUNE))
def test_finetune_configs_take_their_backbone_from_the_manifest(name):
    from ppdet_gcnet.weights.manifest import PDPARAMS, find_entry
    keys = _own_keys(FINETUNE[name])
    entry = find_entry(keys['pretrain_weights'])
    assert entry is not None and entry.name == name and entry.format == PDPARAMS
    assert entry.url == f'https://paddledet.bj.bcebos.com/models/pretrained/{name}.pdparams'


@pytest.fixture
def stand_in(tmp_path):
    """An 'ImageNet ResNet18-vd' file: ppdet's plain ResNet18-vd state dict, seeded values."""
    import paddle
    from ppdet.modeling.backbones.resnet import ResNet
    paddle.seed(7)
    plain = ResNet(depth=18, variant='d')
    path = tmp_path / 'served' / 'ResNet18_vd_pretrained.pdparams'
    path.parent.mkdir()
    paddle.save(plain.state_dict(), str(path))
    return path, {k: v.numpy() for k, v in plain.state_dict().items()}


@pytest.fixture
def loopback(stand_in):
    folder = str(stand_in[0].parent)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=folder, **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def test_download_prints_sha256_and_the_config_resolves_to_the_verified_file(
        loopback, stand_in, tmp_path, monkeypatch, capsys):
    import dataclasses
    import importlib

    monkeypatch.syspath_prepend(os.path.join(ROOT, 'tools'))
    download_weights = importlib.import_module('download_weights')
    from ppdet_gcnet.weights import manifest, resolve
    real = manifest.get_entry('ResNet18_vd_pretrained')
    served = dataclasses.replace(real, url=f'{loopback}/{real.filename}')
    lookup = lambda value: served if value in (real.name, real.url) else None  # noqa: E731
    monkeypatch.setattr(resolve, 'find_entry', lookup)
    monkeypatch.setattr(download_weights, 'find_entry', lookup)
    monkeypatch.setenv('PPDET_GCNET_CACHE', str(tmp_path / 'cache'))

    assert download_weights.main([real.name, '--print-sha256']) == 0
    out, err = capsys.readouterr()
    cached = out.strip().splitlines()[-1]
    want = hashlib.sha256(stand_in[0].read_bytes()).hexdigest()
    assert f'sha256 {want}  {cached}' in err
    assert cached.startswith(str(tmp_path / 'cache')) and os.path.isfile(cached)

    # The config's own pretrain_weights value (the official URL) resolves to the cached file.
    pretrain = _own_keys(FINETUNE[real.name])['pretrain_weights']
    assert resolve.resolve_weights(pretrain) == cached
    # (that such a file loads into GCResNet, GC blocks left at their initialisation, is
    # tests/test_gc_resnet.py's pretrained-load test)


def _closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_without_network_training_stops_with_one_line(tmp_path, shapes_dataset):
    # All traffic goes to a proxy port nobody listens on: as good as no network, on any machine.
    proxy = f'http://127.0.0.1:{_closed_port()}'
    env = {'https_proxy': proxy, 'http_proxy': proxy, 'HTTPS_PROXY': proxy, 'HTTP_PROXY': proxy,
           'no_proxy': '', 'NO_PROXY': '', 'PPDET_GCNET_CACHE': str(tmp_path / 'cache')}
    # a dataset that exists, so the only thing missing is the network (a fresh clone has none)
    datasets = [f'{name}.dataset_dir={shapes_dataset}'
                for name in ('TrainDataset', 'EvalDataset', 'TestDataset')]
    result = run_tool('tools/train.py', '-c', FINETUNE['ResNet18_vd_pretrained'],
                      '-o', *datasets, env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    assert 'ResNet18_vd_pretrained' in lines[0] and 'network' in lines[0], lines[0]

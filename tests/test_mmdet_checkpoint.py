"""Reading `.pth` checkpoints without torch and without running their code; the manifest's
mmdetection entries; a published-name checkpoint fetched from loopback, checked against the hash
in its name and converted on first use; the converter tool's one-line errors."""
import collections
import hashlib
import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import paddle
import pytest
import torch
import torch.nn as nn
import torchvision

from mmdet_reference import MMDetFPN, RoIHead, RPNHead, randomize
from ppdet_gcnet.weights import WeightsError, resolve_weights
from ppdet_gcnet.weights.manifest import MMDET_PTH, MODELS
from ppdet_gcnet.weights.mmdet_checkpoint import (CheckpointError, Opaque,
                                                  load_state_dict, load_torch_checkpoint)
from test_weights_resolve import base_url, manifest  # noqa: F401  (fixtures)
from tool_runner import ROOT
from zoo_rows import MMDET_ROWS


class MetaConfig:
    """Stands for a config object in a checkpoint's meta (a class the reader must not import)."""
    def __init__(self):
        self.text = 'model = dict()'


def tensors():
    sd = collections.OrderedDict()
    sd['a'] = torch.randn(3, 4)
    sd['transposed'] = torch.randn(5, 6).t()                        # non-contiguous view
    sd['offset_view'] = torch.arange(20, dtype=torch.float64)[5:11].view(2, 3)
    sd['scalar'] = torch.tensor(7, dtype=torch.int64)
    sd['bf16'] = torch.randn(4).to(torch.bfloat16)
    sd['half'] = torch.randn(2, 2).half()
    sd['param'] = nn.Parameter(torch.randn(3))
    return sd


@pytest.mark.parametrize('zipped', [True, False], ids=['zip', 'legacy-stream'])
def test_both_torch_formats_read_exactly(tmp_path, zipped):
    sd = tensors()
    path = tmp_path / 'c.pth'
    torch.save({'meta': {'epoch': 12, 'CLASSES': ('a', 'b'), 'config': MetaConfig()},
                'state_dict': sd}, path, _use_new_zipfile_serialization=zipped)
    arrays, meta = load_state_dict(path)
    assert set(arrays) == set(sd)
    for name, tensor in sd.items():
        expected = tensor.detach().float() if tensor.dtype == torch.bfloat16 else tensor.detach()
        assert arrays[name].dtype == expected.numpy().dtype
        assert np.array_equal(arrays[name], expected.numpy()), name
    assert meta['epoch'] == 12 and meta['CLASSES'] == ('a', 'b')
    assert isinstance(meta['config'], Opaque) and meta['config'].state == {'text': 'model = dict()'}
    assert load_torch_checkpoint(path)[1] == {f'{__name__}.MetaConfig'}


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_code_in_the_pickle_never_runs(tmp_path):
    """A checkpoint whose pickle calls os.system: the call becomes an inert placeholder."""
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'x': _Exploit(marker)}}, path)
    arrays, meta = load_state_dict(path)
    assert not marker.exists()
    assert np.array_equal(arrays['w'], np.ones(2, 'float32'))
    assert isinstance(meta['x'], Opaque) and meta['x'].args == (f'touch {marker}',)
    # the same payload with the real unpickler would have run it (the test's premise)
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith('data.pkl')))
    assert b'system' in data


def test_bad_files_are_one_line_errors(tmp_path):
    path = tmp_path / 'x.pth'
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='not a PyTorch checkpoint'):
        load_state_dict(path)
    torch.save({'w': torch.ones(1000)}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:-100])           # truncated storage bytes
    with pytest.raises(CheckpointError, match='truncated'):
        load_state_dict(path)
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match='not a state dict'):
        load_state_dict(path)
    with pytest.raises(CheckpointError, match='cannot read'):
        load_state_dict(tmp_path / 'missing.pth')


def test_manifest_has_every_mmdet_row_with_its_config_and_figures():
    entries = {e.name: e for e in MODELS if e.format == MMDET_PTH}
    assert set(entries) == {r.name for r in MMDET_ROWS}
    for row in MMDET_ROWS:
        entry = entries[row.name]
        assert os.path.isfile(os.path.join(ROOT, entry.config))
        assert entry.config == f'configs/gcnet/{row.name}.yml'
        assert (entry.box_ap, entry.mask_ap) == (row.box_ap, row.mask_ap)
        assert entry.url.startswith('https://download.openmmlab.com/mmdetection/v2.0/gcnet/'
                                    f'{row.name}/{row.name}_')
        assert entry.filename.endswith('.pth') and entry.filename[-13] == '-'


def small_checkpoint():
    """A ResNet-18 Mask R-CNN in mmdetection's names, shaped like the tiny config below."""
    model = nn.Module()
    model.backbone = torchvision.models.resnet18()
    del model.backbone.fc
    # ppdet's ResNet-18 projects the shortcut of its first block too
    model.backbone.layer1[0].downsample = nn.Sequential(nn.Conv2d(64, 64, 1, bias=False),
                                                        nn.BatchNorm2d(64))
    model.neck = MMDetFPN([64, 128, 256, 512], 32)
    model.rpn_head = RPNHead(32)
    model.roi_head = RoIHead(32, 64, 80, 1)
    randomize(model, seed=9)
    buffer = io.BytesIO()
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, buffer)
    return model, buffer.getvalue()


def tiny_config(tmp_path):
    path = tmp_path / 'r18.yml'
    path.write_text(
        f"_BASE_: ['{ROOT}/configs/gcnet/mask_rcnn_r50_fpn_syncbn-backbone_1x_coco.yml']\n"
        "GCResNet: {depth: 18}\nFPN: {out_channel: 32}\nTwoFCHead: {out_channel: 64}\n"
        "MaskFeat: {num_convs: 1, out_channel: 32}\n")
    return str(path)


def test_published_checkpoint_fetched_checked_and_converted(tmp_path, manifest, monkeypatch):  # noqa: F811,E501
    model, body = small_checkpoint()
    digest = hashlib.sha256(body).hexdigest()
    config = tiny_config(tmp_path)
    from ppdet_gcnet import config_files      # manifest configs are bundled ones; this is in tmp
    bundled = config_files.bundled_config
    monkeypatch.setattr(config_files, 'bundled_config',
                        lambda name: name if name == config else bundled(name))
    good = manifest(f'r18_20200101-{digest[:8]}.pth', MMDET_PTH, body, config=config)
    converted = resolve_weights(good.name)
    assert converted.endswith('.pdparams') and os.path.isfile(converted)
    state = paddle.load(converted)
    expected = model.state_dict()['backbone.layer3.1.conv2.weight'].numpy()
    assert np.array_equal(state['backbone.res4.res4b.branch2b.conv.weight'].numpy(), expected)
    fc = model.state_dict()['roi_head.bbox_head.shared_fcs.1.weight'].numpy()
    assert np.array_equal(state['bbox_head.head.fc7.weight'].numpy(), fc.T)
    assert resolve_weights(good.name) == converted                # cached, not converted again
    wrong = '0' * 8 if not digest.startswith('0' * 8) else '1' * 8
    bad = manifest(f'r18bad_20200101-{wrong}.pth', MMDET_PTH, body, config=config)
    with pytest.raises(WeightsError, match='does not match the'):
        resolve_weights(bad.name)


def test_tool_errors_are_one_line(tmp_path):
    tool = os.path.join(ROOT, 'tools', 'convert_mmdet_weights.py')
    config = os.path.join(ROOT, 'configs/gcnet/mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco.yml')
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'\x80\x02junk')
    for args in ([str(bad), '-c', config, '-o', str(tmp_path / 'o.pdparams')],
                 ['mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco', '-c', config, '-o',
                  str(tmp_path / 'o.pdparams')]):
        proc = subprocess.run([sys.executable, tool] + args, capture_output=True, text=True,
                              timeout=120, env={**os.environ, 'PYTHONPATH': ROOT})
        assert proc.returncode == 2
        last = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
        assert len(last) == 1 and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'o.pdparams').exists()

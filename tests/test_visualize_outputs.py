"""What a visualisation run writes: PNGs at the image's size that read back, a JSON report,
the 'avg' pooling note instead of a heat map, and nothing half-written."""
import json
import os

import cv2
import numpy as np
import paddle
from ppdet.data.transform.batch_operators import PadBatch
from ppdet.data.transform.operators import Decode, NormalizeImage, Permute, Resize

from ppdet_gcnet import GCResNet
from ppdet_gcnet.analysis.visualize import visualize


def _backbone(pooling):
    paddle.seed(0)
    return GCResNet(depth=18, variant='d', norm_type='bn', freeze_at=-1, gc_stages=[1, 2, 3],
                    gc_pooling_type=pooling, gc_fusion_types=['channel_add'])


def _batches(paths):
    """ppdet's own test-time operators, one image per batch, padded to a multiple of 32."""
    ops = [Decode(), Resize(target_size=[96, 96], keep_ratio=True, interp=2),
           NormalizeImage(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], is_scale=True),
           Permute()]
    for index, path in enumerate(paths):
        sample = {'im_file': path, 'im_id': np.array([index])}
        for op in ops:
            sample = op(sample)
        (sample, ) = PadBatch(pad_to_stride=32)([sample])
        yield {key: paddle.to_tensor(np.asarray(sample[key])[None])
               for key in ('image', 'im_shape', 'scale_factor', 'im_id')}


def _non_square_image(folder):
    path = os.path.join(folder, 'wide.png')
    image = np.zeros((60, 100, 3), np.uint8)
    cv2.circle(image, (70, 30), 15, (255, 200, 0), -1)
    assert cv2.imwrite(path, image)
    return path


def _all_files(folder):
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]


def test_att_run_writes_readable_pngs_at_image_size(shapes_dataset, tmp_path):
    square = os.path.join(shapes_dataset, 'val', 'val_00000.jpg')
    paths = [square, _non_square_image(str(tmp_path))]   # 100x60 is padded to 96x64 -> cropped
    out = tmp_path / 'out'
    logs = []
    backbone = _backbone('att')
    outputs = visualize(backbone, _batches(paths), dict(enumerate(paths)), str(out),
                        log=logs.append)
    assert sorted(outputs) == sorted(paths)
    for path in paths:
        height, width = cv2.imread(path).shape[:2]
        folder = out / os.path.splitext(os.path.basename(path))[0]
        overlays = sorted(p for p in os.listdir(folder) if p.startswith('res'))
        assert len(overlays) == len(backbone.gc_blocks) == 6
        for name in overlays:
            image = cv2.imread(str(folder / name))
            assert image is not None, name
            assert image.shape == (height, width, 3), name
        for sheet in ('summary.png', 'report.png'):
            image = cv2.imread(str(folder / sheet))
            assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
        report = json.loads((folder / 'report.json').read_text())
        assert report['image'] == path
        assert [b['block'] for b in report['blocks']] == [o[:-4] for o in overlays]
        assert all(0.0 <= b['entropy_ratio'] <= 1.0 for b in report['blocks'])
    assert not [f for f in _all_files(str(out)) if '.tmp-' in f]
    assert not any('uniform by construction' in line for line in logs)


def test_avg_run_says_uniform_instead_of_drawing(shapes_dataset, tmp_path):
    path = os.path.join(shapes_dataset, 'val', 'val_00001.jpg')
    logs = []
    visualize(_backbone('avg'), _batches([path]), {0: path}, str(tmp_path), log=logs.append)
    folder = tmp_path / 'val_00001'
    assert sorted(os.listdir(folder)) == ['report.json', 'report.png', 'summary.png']
    assert any('uniform by construction' in line for line in logs)
    report = json.loads((folder / 'report.json').read_text())
    assert all('uniform by construction' in b['attention'] for b in report['blocks'])
    assert cv2.imread(str(folder / 'summary.png')) is not None


def test_map_is_cropped_to_the_image_before_upsampling():
    from ppdet_gcnet.analysis.context_plots import attention_on_image
    attention = np.full((8, 12), 5.0, np.float32)
    attention[6:, :] = 100.0      # rows under the batch padding
    attention[:, 9:] = 100.0      # columns under the batch padding
    heat = attention_on_image(attention, (6 / 8, 9 / 12), (30, 45))
    assert heat.shape == (30, 45)
    np.testing.assert_allclose(heat, 5.0)

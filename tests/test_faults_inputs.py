"""Bad input to every tool: one line naming the bad value, exit status 2, no traceback, nothing
written. Damaged and misfit weights files, broken datasets, output directories that cannot be
written; and weights files corrupted byte by byte."""
import json
import os
import shutil

import numpy as np
import paddle
import pytest

from tool_runner import ROOT, run_tool, tiny_config


def _one_error_line(result):
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    lines = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope='module')
def model_files(tmp_path_factory, shapes_dataset):
    """The tiny model's initial weights, and damaged or misfit variants of them."""
    work = tmp_path_factory.mktemp('inputs')
    config = tiny_config(str(work), shapes_dataset)
    from ppdet.core.workspace import create, load_config
    import ppdet_gcnet  # noqa: F401
    load_config(config)
    state = create('MaskRCNN').state_dict()
    good = work / 'good.pdparams'
    paddle.save(state, str(good))
    data = good.read_bytes()
    (work / 'truncated.pdparams').write_bytes(data[:len(data) // 2])
    (work / 'text.pdparams').write_text('these are not weights\n')
    misfit = dict(state)
    for name in ('backbone.conv1.conv1_1.conv.weight', 'rpn_head.rpn_feat.rpn_conv.weight'):
        shape = list(misfit[name].shape)
        misfit[name] = paddle.zeros([shape[0] * 2] + shape[1:])
    paddle.save(misfit, str(work / 'misfit.pdparams'))
    paddle.save({'not': 'a state dict'}, str(work / 'other.pdparams'))
    return config, work


@pytest.mark.parametrize('tool,extra', [
    ('tools/eval.py', []),
    ('tools/infer.py', ['--infer_img', 'IMAGE', '--output_dir', 'OUT']),
    ('tools/export_model.py', ['--output_dir', 'OUT']),
    ('tools/visualize_context.py', ['--infer_img', 'IMAGE', '--output_dir', 'OUT']),
])
@pytest.mark.parametrize('weights,needle', [
    ('truncated', 'not a readable Paddle weights file (truncated or another format'),
    ('text', 'not a readable Paddle weights file'),
    ('other', 'not a weights file (holds a dict'),
    ('misfit', '2 parameter(s) do not fit the model: backbone.conv1.conv1_1.conv.weight '
               '[64, 3, 3, 3] in the file vs [32, 3, 3, 3] in the model; '
               'rpn_head.rpn_feat.rpn_conv.weight'),
])
def test_bad_weights_files(model_files, shapes_dataset, tmp_path, tool, extra, weights, needle):
    config, work = model_files
    image = os.path.join(shapes_dataset, 'val', 'val_00000.jpg')
    out = tmp_path / 'out'
    extra = [str(out) if a == 'OUT' else image if a == 'IMAGE' else a for a in extra]
    path = work / f'{weights}.pdparams'
    line = _one_error_line(run_tool(tool, '-c', config, '-o', f'weights={path}', *extra))
    assert line.startswith(f'error: weights: {path}: {needle}'), line
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_resume_from_a_truncated_checkpoint(model_files):
    config, work = model_files
    line = _one_error_line(run_tool('tools/train.py', '-c', config, '-r',
                                    str(work / 'truncated')))
    assert f"error: -r/--resume: {work / 'truncated.pdparams'}: not a readable" in line


def _dataset_copy(shapes_dataset, tmp_path):
    root = tmp_path / 'shapes'
    shutil.copytree(shapes_dataset, root)
    return root


def _break_missing_dir(root):
    shutil.rmtree(root / 'train')
    return 'TrainDataset.image_dir train: {root}/train: no such directory'


def _break_missing_annotations(root):
    (root / 'annotations' / 'instances_train.json').unlink()
    return ('TrainDataset.anno_path annotations/instances_train.json: '
            '{root}/annotations/instances_train.json: no such file')


def _break_json(root):
    path = root / 'annotations' / 'instances_train.json'
    path.write_text(path.read_text()[:-40])
    return 'TrainDataset.anno_path {root}/annotations/instances_train.json: malformed JSON ('


def _break_image_list(root):
    path = root / 'annotations' / 'instances_train.json'
    coco = json.loads(path.read_text())
    coco['images'][1]['file_name'] = 'gone.jpg'
    path.write_text(json.dumps(coco))
    return ('TrainDataset.anno_path {root}/annotations/instances_train.json: 1 of 4 listed '
            'images not found: {root}/train/gone.jpg')


def _break_image(root):
    first = sorted((root / 'train').iterdir())[0]
    first.write_bytes(b'\x00' * 100)
    return f'TrainDataset: 1 of 4 images are not JPEG, PNG or BMP files (damaged?): {{root}}/train/{first.name}'


@pytest.mark.parametrize('damage', [_break_missing_dir, _break_missing_annotations, _break_json,
                                    _break_image_list, _break_image],
                         ids=['image_dir', 'annotations', 'json', 'missing_image', 'undecodable'])
def test_broken_training_set(shapes_dataset, tmp_path, damage):
    root = _dataset_copy(shapes_dataset, tmp_path)
    needle = damage(root).format(root=root)
    config = tiny_config(str(tmp_path), str(root))
    line = _one_error_line(run_tool('tools/train.py', '-c', config))
    assert line == f'error: {needle}' or line.startswith(f'error: {needle}'), line
    assert not (tmp_path / 'output').exists()  # no run directory, no checkpoint


def test_missing_dataset_dir_for_eval(tmp_path, model_files):
    config, work = model_files
    line = _one_error_line(run_tool('tools/eval.py', '-c', config, '-o',
                                    f'weights={work / "good"}',
                                    'EvalDataset.dataset_dir=/nonexistent/shapes'))
    assert line == ('error: EvalDataset.dataset_dir /nonexistent/shapes: /nonexistent/shapes: '
                    'no such directory'), line


@pytest.mark.parametrize('tool,flag,extra', [
    ('tools/train.py', 'save_dir', []),
    ('tools/eval.py', '--output_eval', ['-o', 'weights=GOOD']),
    ('tools/infer.py', '--output_dir', ['-o', 'weights=GOOD', '--infer_img', 'IMAGE']),
    ('tools/export_model.py', '--output_dir', ['-o', 'weights=GOOD']),
    ('tools/visualize_context.py', '--output_dir', ['-o', 'weights=GOOD', '--infer_img', 'IMAGE']),
])
def test_unwritable_output_dir(model_files, shapes_dataset, tmp_path, tool, flag, extra):
    config, work = model_files
    blocker = tmp_path / 'a_file'
    blocker.write_text('in the way')
    target = blocker / 'out'
    image = os.path.join(shapes_dataset, 'val', 'val_00000.jpg')
    extra = [f'weights={work / "good"}' if a == 'weights=GOOD' else image if a == 'IMAGE' else a
             for a in extra]
    if flag == 'save_dir':
        extra += ['-o', f'save_dir={target}']
    else:
        extra += [flag, str(target)]
    line = _one_error_line(run_tool(tool, '-c', config, *extra))
    assert line.startswith(f'error: {flag} {target}'), line


def test_deploy_unwritable_output_dir(tmp_path, shapes_dataset):
    blocker = tmp_path / 'a_file'
    blocker.write_text('in the way')
    result = run_tool('deploy/python/infer.py', '--model_dir', str(tmp_path), '--image_file',
                      os.path.join(shapes_dataset, 'val', 'val_00000.jpg'),
                      '--output_dir', str(blocker / 'out'))
    line = _one_error_line(result)
    assert line.startswith(f"error: --output_dir {blocker / 'out'}: cannot write there"), line


def test_weights_file_corrupted_byte_by_byte(tmp_path):
    """Every truncation of a small weights file, and a flipped byte at every position: the
    reader returns the dict or raises WeightsError, never anything else."""
    from ppdet_gcnet.weights import WeightsError
    from ppdet_gcnet.weights.state_file import read_state_dict
    layer = paddle.nn.Linear(3, 2)
    good = tmp_path / 'good.pdparams'
    paddle.save(layer.state_dict(), str(good))
    data = good.read_bytes()
    path = tmp_path / 'bad.pdparams'
    outcomes = {'error': 0, 'loaded': 0}
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match=f'weights: {path}: '):
            read_state_dict(path)
        outcomes['error'] += 1
    for index in range(len(data)):
        damaged = bytearray(data)
        damaged[index] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            state = read_state_dict(path)
        except WeightsError as error:
            assert str(error).startswith(f'weights: {path}: '), error
            outcomes['error'] += 1
        else:
            assert isinstance(state, dict)
            outcomes['loaded'] += 1
    assert outcomes['error'] > len(data)  # every truncation, and many flips


def test_weights_tools_unwritable_destination(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('in the way')
    result = run_tool('tools/download_weights.py', 'ResNet50_vd_pretrained', '--cache-dir',
                      str(blocker / 'cache'))
    assert _one_error_line(result) == (f"error: --cache-dir {blocker / 'cache'}: cannot write "
                                       f"there ({blocker} is a file)")
    output = blocker / 'x.pdparams'
    result = run_tool('tools/convert_legacy_weights.py', str(tmp_path), '-c',
                      'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml', '-o',
                      str(output))
    assert _one_error_line(result).startswith(f"error: -o {output}: its folder {blocker}: "
                                              f"cannot write there")


def test_mmdet_conversion_tool_unwritable_destination(tmp_path):
    """The mmdetection converter checks its output folder first, in one line, like the legacy
    one (both go through ppdet_gcnet.weights.convert_tool)."""
    blocker = tmp_path / 'a_file'
    blocker.write_text('in the way')
    output = blocker / 'x.pdparams'
    result = run_tool('tools/convert_mmdet_weights.py', str(tmp_path / 'missing.pth'), '-c',
                      'configs/gcnet/mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco.yml', '-o',
                      str(output))
    assert _one_error_line(result) == (f"error: -o {output}: its folder {blocker}: cannot write "
                                       f"there ({blocker} is a file)")


@pytest.mark.parametrize('tool, name, hint', [
    ('convert_mmdet_weights.py', 'mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco',
     'legacy Paddle weights: convert them with tools/convert_legacy_weights.py'),
    ('convert_legacy_weights.py', 'mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco',
     'an mmdetection checkpoint: convert it with tools/convert_mmdet_weights.py'),
])
def test_conversion_tools_name_the_right_tool(tmp_path, tool, name, hint):
    result = run_tool(f'tools/{tool}', name, '-c',
                      'configs/gcnet/mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco.yml', '-o',
                      str(tmp_path / 'x.pdparams'))
    assert _one_error_line(result) == f"error: {name}: {hint}"

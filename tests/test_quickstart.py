"""The quickstart's pieces, small: its config trains a couple of steps and evaluates with a
per-class AP table; the bundled validation set does not depend on how many training images are
generated; the script wires the tools together with progress lines and says where the picture is."""
import filecmp
import json
import os
import re
import subprocess
import sys

from tool_runner import QUICKSTART_CONFIG, ROOT, run_tool

from ppdet_gcnet.data.shapes import BASE_TRAIN_IMAGES, SHAPE_CLASSES, make_shapes_dataset


def _annotations(root, split):
    with open(os.path.join(root, 'annotations', f'instances_{split}.json')) as handle:
        data = json.load(handle)
    for ann in data['annotations']:
        ann.pop('id')
    return data


def test_more_training_images_leave_the_validation_set_unchanged(tmp_path):
    kwargs = dict(num_val=3, width=64, height=64, seed=5)
    small = make_shapes_dataset(str(tmp_path / 'small'), num_train=2, **kwargs)
    base = make_shapes_dataset(str(tmp_path / 'base'), num_train=BASE_TRAIN_IMAGES, **kwargs)
    big = make_shapes_dataset(str(tmp_path / 'big'), num_train=BASE_TRAIN_IMAGES + 5, **kwargs)
    # The validation set follows the first BASE_TRAIN_IMAGES training images in one stream...
    assert _annotations(base, 'val') == _annotations(big, 'val')
    for name in sorted(os.listdir(os.path.join(base, 'val'))):
        assert filecmp.cmp(os.path.join(base, 'val', name), os.path.join(big, 'val', name),
                           shallow=False)
    # ...the extra training images come from their own stream, after the base ones.
    train_base, train_big = _annotations(base, 'train'), _annotations(big, 'train')
    assert train_big['images'][:BASE_TRAIN_IMAGES] == train_base['images']
    assert len(train_big['images']) == BASE_TRAIN_IMAGES + 5
    extra = [a for a in train_big['annotations'] if a['image_id'] > BASE_TRAIN_IMAGES]
    assert extra and {a['category_id'] for a in train_big['annotations']} == {1, 2, 3}
    # fewer training images than the base count: a prefix of the same stream
    assert _annotations(small, 'train')['images'] == train_base['images'][:2]


def _on_dataset(tmp_path, dataset_root):
    """The quickstart config, unchanged but for where its data lives."""
    path = tmp_path / 'quickstart_on_tiny_data.yml'
    path.write_text(f"""_BASE_: [{QUICKSTART_CONFIG!r}]
TrainDataset:
  !COCODataSet
    image_dir: train
    anno_path: annotations/instances_train.json
    dataset_dir: {dataset_root}
    data_fields: ['image', 'gt_bbox', 'gt_class', 'gt_poly', 'is_crowd']
EvalDataset:
  !COCODataSet
    image_dir: val
    anno_path: annotations/instances_val.json
    dataset_dir: {dataset_root}
""")
    return str(path)


def test_quickstart_config_trains_two_steps_and_prints_per_class_ap(shapes_dataset, tmp_path):
    config = _on_dataset(tmp_path, shapes_dataset)
    save = str(tmp_path / 'out')
    train = run_tool('tools/train.py', '-c', config, '--seed', '0', '-o', 'epoch=1',
                     'TrainReader.batch_size=2', f'save_dir={save}', 'log_iter=1')
    assert train.returncode == 0, train.stderr[-3000:]
    log = train.stdout + train.stderr
    steps = re.findall(r'Epoch: \[0\] \[\s*(\d+)/(\d+)\].* eta: (\d+:\d\d:\d\d)', log)
    assert [s[:2] for s in steps] == [('0', '2'), ('1', '2')], log[-3000:]
    weights = os.path.join(save, 'quickstart_on_tiny_data', 'model_final')
    assert os.path.isfile(weights + '.pdparams')

    # from its own folder: ppdet's per-class evaluation draws curves into the working directory
    work = tmp_path / 'eval'
    work.mkdir()
    evaluate = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'eval.py'), '-c', config, '--classwise',
         '-o', f'weights={weights}'], cwd=work, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    out = evaluate.stdout + evaluate.stderr
    # ppdet's classwise table: one row per class name with its AP, for boxes and for masks
    for kind in ('bbox', 'segm'):
        assert f'Per-category of {kind} AP' in out, out[-3000:]
    for label in SHAPE_CLASSES:
        assert len(re.findall(rf'\|\s*{label}\s*\|\s*(?:\d\.\d+|nan)\s*\|', out)) == 2, out[-3000:]
        for kind in ('bbox', 'segm'):
            assert (work / f'{kind}_pr_curve' / f'{label}_precision_recall_curve.jpg').is_file()

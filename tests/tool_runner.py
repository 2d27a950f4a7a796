"""Running the project's tools as a user would: in a subprocess, from the repository root."""
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
QUICKSTART_CONFIG = os.path.join(
    ROOT, 'configs/gcnet/shapes/mask_rcnn_r18_vd_fpn_gcb_add_r16_shapes.yml')


def run_tool(tool, *args, timeout=600, env=None, python_args=()):
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    command = [sys.executable, *python_args]
    command += [tool] if tool.startswith('-') else [os.path.join(ROOT, tool)]
    return subprocess.run(command + list(args), cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def tiny_config(tmp_dir, dataset_root, name='tiny_gc_mask_rcnn.yml', extra=''):
    """A config file that inherits the quickstart config and trains on `dataset_root` at 128 px
    for one epoch, writing into tmp_dir."""
    path = os.path.join(tmp_dir, name)
    resize = ("  - Resize: {interp: 2, target_size: [128, 128], keep_ratio: true}\n"
              "  - NormalizeImage: {is_scale: true, mean: [0.485, 0.456, 0.406], "
              "std: [0.229, 0.224, 0.225]}\n  - Permute: {}\n")
    with open(path, 'w') as f:
        f.write(f"""_BASE_: ['{QUICKSTART_CONFIG}']
epoch: 1
snapshot_epoch: 1
log_iter: 1
save_dir: {tmp_dir}/output
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
TestDataset:
  !ImageFolder
    anno_path: annotations/instances_val.json
    dataset_dir: {dataset_root}
TrainReader:
  sample_transforms:
  - Decode: {{}}
  - RandomFlip: {{prob: 0.5}}
{resize}  batch_size: 2
  shuffle: false
EvalReader:
  sample_transforms:
  - Decode: {{}}
{resize}TestReader:
  sample_transforms:
  - Decode: {{}}
{resize}{extra}""")
    return path

"""A tiny Mask R-CNN config for tests: the GC row (or the control) on the generated shapes data,
shrunk to train a few iterations on CPU in seconds."""
import os

GC_CONFIG = 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml'
CONTROL_CONFIG = 'configs/gcnet/mask_rcnn_r50_vd_fpn_2x_coco.yml'  # same model without GC
SHAPES_DATA = 'configs/gcnet/shapes/shapes_instance.yml'
TINY_SIZE = 128
_NORMALIZE = ("{NormalizeImage: {is_scale: true, mean: [0.485, 0.456, 0.406], "
              "std: [0.229, 0.224, 0.225]}}")


def checkpoint_dir(save_dir, config_path):
    """Where training writes checkpoints: PaddleDetection 2.6.0 under save_dir/<config name>/;
    upstream develop (its uniform-output change) straight into save_dir."""
    import ppdet
    if ppdet.version.full_version != '2.6.0':
        return save_dir
    return os.path.join(save_dir, os.path.splitext(os.path.basename(str(config_path)))[0])


def write_tiny_config(repo_root, dataset_root, directory, name='tiny_gc', base=GC_CONFIG,
                      backbone='GCResNet', test_proposals=64, save_dir=None):
    """The GC row's config (Mask R-CNN, GC c3-c5 r16 add) on the shapes data, shrunk for a test:
    depth 18, narrow FPN and heads, 128x128 images, one epoch. Returns the config file's path;
    its file name is what ppdet names output and export directories after. `save_dir`, if
    given, is where training writes its checkpoints."""
    bases = [os.path.join(repo_root, base), os.path.join(repo_root, SHAPES_DATA)]
    text = f"""_BASE_: {bases!r}
use_gpu: false
worker_num: 0
epoch: 1
snapshot_epoch: 1
log_iter: 1
pretrain_weights: null
{f'save_dir: {save_dir}' if save_dir else ''}
{backbone}: {{depth: 18, freeze_at: -1, freeze_norm: false}}
FPN: {{out_channel: 64}}
RPNHead:
  train_proposal: {{pre_nms_top_n: 200, post_nms_top_n: 64}}
  test_proposal: {{pre_nms_top_n: 200, post_nms_top_n: {test_proposals}}}
BBoxAssigner: {{batch_size_per_im: 32}}
TwoFCHead: {{out_channel: 128}}
MaskFeat: {{num_convs: 1, out_channel: 64}}
TrainReader:
  sample_transforms:
  - Decode: {{}}
  - RandomResize: {{target_size: [[{TINY_SIZE}, {TINY_SIZE}]], interp: 2, keep_ratio: true}}
  - RandomFlip: {{prob: 0.5}}
  - {_NORMALIZE}
  - Permute: {{}}
  batch_size: 2
  use_shared_memory: false
EvalReader:
  sample_transforms:
  - Decode: {{}}
  - Resize: {{target_size: [{TINY_SIZE}, {TINY_SIZE}], interp: 2, keep_ratio: true}}
  - {_NORMALIZE}
  - Permute: {{}}
TestReader:
  sample_transforms:
  - Decode: {{}}
  - Resize: {{target_size: [{TINY_SIZE}, {TINY_SIZE}], interp: 2, keep_ratio: true}}
  - {_NORMALIZE}
  - Permute: {{}}
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
"""
    path = os.path.join(str(directory), f'{name}.yml')
    with open(path, 'w') as f:
        f.write(text)
    return path

"""The project's one exporter: a ppdet detector -> PaddleDetection's deploy layout.

`export_model(cfg, model, output_dir, raw_masks=..., onnx=...)` writes `model.json` (PIR program),
`model.pdiparams`, `infer_cfg.yml` (ppdet's own `_dump_infer_config`, plus `mask_output: raw`
and `mask_threshold` for raw masks, `pipeline: legacy` for the legacy-exact pipeline's models)
and, when asked, `model.onnx`, into a temporary directory beside `output_dir` that is renamed
into place when every file is written. The graph rewrites it applies before
tracing are listed in `ppdet_gcnet.deploy.export_forms`. tools/export_model.py,
deploy/benchmark.py and the tests all export through it. The helpers below it give random-weight
models a realistic, fixed workload for tests and benchmarks.
"""
import os
import shutil
import tempfile

import paddle
from paddle.static import InputSpec

from .export_forms import prepare_for_export


def force_detections(model, count):
    """Make the final NMS keep exactly `count` boxes per image (score threshold 0), so the mask
    head's and the output's workload does not depend on how confident the weights are."""
    nms = model.bbox_post_process.nms
    nms.score_threshold = 0.0
    nms.keep_top_k = int(count)
    return model


def force_proposals(model):
    """Make the RoI heads' workload (nearly) identical for every model whatever its weights: the
    RPN's objectness and box regression and the box head's box regression are zeroed (the layers
    still run, so their cost is unchanged) and the proposal NMS threshold set to 1.0. Every model
    then hands the same `post_nms_top_n` anchors to the box head (RoIAlign's adaptive sampling
    makes its cost grow with box size) and its detections are some of those anchors; only which
    100 the class scores pick for the mask head still depends on the weights. Measured before
    this: 60 to 740 proposals on one image, box-head RoIAlign 310-640 ms by model."""
    for layer in (model.rpn_head.rpn_rois_score, model.rpn_head.rpn_rois_delta,
                  model.bbox_head.bbox_delta):
        layer.weight.set_value(paddle.zeros_like(layer.weight))
        layer.bias.set_value(paddle.zeros_like(layer.bias))
    model.rpn_head.test_proposal.nms_thresh = 1.0
    return model


def calibrate_batch_norm(model, inputs):
    """Set every BatchNorm's running statistics to those of `inputs` (one forward in train mode
    with momentum 0), leaving the model in eval mode. With random weights and untrained
    statistics, activations grow through the backbone until every class score is exactly 0 or 1,
    and a forced detection count can no longer be met; calibrated, the scores are spread out."""
    norms = [m for m in model.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]
    momenta = [norm._momentum for norm in norms]
    for norm in norms:
        norm._momentum = 0.0  # running statistics := this batch's
    model.train()
    with paddle.no_grad():
        model.backbone(inputs)
    for norm, momentum in zip(norms, momenta):
        norm._momentum = momentum
    model.eval()
    return model


def _input_spec(cfg):
    """ppdet's export input spec; a fixed image size in TestReader.inputs_def is kept."""
    image_shape = [None, 3, -1, -1]
    inputs_def = (cfg.get('TestReader') or {}).get('inputs_def') or {}
    if inputs_def.get('image_shape'):
        shape = list(inputs_def['image_shape'])
        image_shape = [None] + shape if len(shape) == 3 else shape
    spec = [{
        'image': InputSpec(image_shape, 'float32', 'image'),
        'im_shape': InputSpec([image_shape[0], 2], 'float32', 'im_shape'),
        'scale_factor': InputSpec([image_shape[0], 2], 'float32', 'scale_factor'),
    }]
    return spec, [-1] + image_shape[1:]


def is_legacy_pipeline(model):
    """The model decodes and pastes the legacy way (configs/gcnet/legacy/): deploy must feed
    the true scale factor and paste raw masks the legacy way."""
    from ..legacy.box_decode import LegacyBBoxPostProcess
    return isinstance(getattr(model, 'bbox_post_process', None), LegacyBBoxPostProcess)


def _write_infer_cfg(cfg, model, path, image_shape, label_list, raw_masks, onnx):
    from ppdet.engine.export_utils import _dump_infer_config
    import yaml
    _dump_infer_config(cfg, path, image_shape, model)
    with open(path) as f:
        infer_cfg = yaml.safe_load(f)
    if label_list is not None:
        infer_cfg['label_list'] = list(label_list)
    if raw_masks:
        infer_cfg['mask_output'] = 'raw'
        # deploy pastes the raw masks: it cuts them where the model's MaskPostProcess would
        threshold = getattr(getattr(model, 'mask_post_process', None), 'binary_thresh', None)
        if threshold is not None:
            infer_cfg['mask_threshold'] = float(threshold)
    if is_legacy_pipeline(model):
        infer_cfg['pipeline'] = 'legacy'
    if onnx:  # the ONNX forms take one image per run (deploy splits batches)
        infer_cfg['onnx_file'] = 'model.onnx'
        infer_cfg['max_batch_size'] = 1
    with open(path, 'w') as f:
        yaml.safe_dump(infer_cfg, f, sort_keys=False)


def _replace_dir(staged, output_dir):
    """Move the fully written `staged` directory to `output_dir`, replacing an older export."""
    old = None
    if os.path.exists(output_dir):
        old = tempfile.mkdtemp(prefix='.old-', dir=os.path.dirname(output_dir))
        os.rename(output_dir, os.path.join(old, 'export'))
    os.rename(staged, output_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def export_model(cfg, model, output_dir, raw_masks=False, onnx=False, label_list=None,
                 log=None):
    """Export `model` (built from `cfg`, weights loaded) to `output_dir`; returns {rewrite
    name: counts} of the graph rewrites applied.

    raw_masks: the graph outputs the mask head's [N, M, M] probabilities and deploy pastes the
      kept ones (`mask_output: raw`); else PaddleDetection's in-graph pasted masks.
    onnx: also write `model.onnx` (needs paddle2onnx; see ppdet_gcnet.deploy.onnx_export).
    label_list: overrides the labels ppdet reads from the dataset's annotations.
    """
    if onnx:
        from .onnx_export import require_paddle2onnx
        require_paddle2onnx()
    output_dir = os.path.abspath(output_dir)
    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    # ppdet_gcnet.compat (applied on import) makes ppdet 2.6's NMS traceable under PIR.
    import ppdet_gcnet  # noqa: F401
    raw_masks = bool(raw_masks) and getattr(model, 'mask_head', None) is not None
    applied = prepare_for_export(model, raw_masks=raw_masks, onnx=onnx)
    if log:
        log(f"export rewrites: {applied}")
    input_spec, image_shape = _input_spec(cfg)
    staged = tempfile.mkdtemp(prefix='.export-', dir=os.path.dirname(output_dir))
    was_dynamic = paddle.in_dynamic_mode()
    try:
        static = paddle.jit.to_static(model, input_spec=input_spec, full_graph=True)
        paddle.jit.save(static, os.path.join(staged, 'model'))
        _write_infer_cfg(cfg, model, os.path.join(staged, 'infer_cfg.yml'), image_shape,
                         label_list, raw_masks, onnx)
        if onnx:
            from .onnx_export import write_onnx
            write_onnx(staged, log=log)
        _replace_dir(staged, output_dir)
    finally:
        if was_dynamic and not paddle.in_dynamic_mode():
            paddle.disable_static()
        if os.path.exists(staged):
            shutil.rmtree(staged, ignore_errors=True)
    return applied

"""Export a ppdet detector for Paddle Inference the way deploy/ expects it, oneDNN-safe.

Writes `<output_dir>/model.json`, `model.pdiparams` and `infer_cfg.yml` (PaddleDetection's own
`_dump_infer_config`), after `make_onednn_safe`. Used by the deploy tests and deploy/benchmark.py;
the project's `tools/export_model.py` is the user-facing exporter and should apply
`make_onednn_safe` to the model the same way before tracing.
"""
import os

import paddle
from paddle.static import InputSpec

from .onednn_safe import make_onednn_safe
from .raw_masks import use_raw_masks

INPUT_SPEC = [{
    'image': InputSpec([None, 3, None, None], 'float32', 'image'),
    'im_shape': InputSpec([None, 2], 'float32', 'im_shape'),
    'scale_factor': InputSpec([None, 2], 'float32', 'scale_factor'),
}]


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


def export_for_deploy(cfg, model, output_dir, label_list=None, raw_masks=True):
    """Trace `model` (eval mode, oneDNN-safe) and write the three export files to `output_dir`.
    With `raw_masks` (and a mask head), the graph outputs [N, 28, 28] mask probabilities that
    deploy pastes (`mask_output: raw` in infer_cfg.yml); else PaddleDetection's pasted masks."""
    from ppdet.engine.export_utils import _dump_infer_config
    os.makedirs(output_dir, exist_ok=True)
    model.eval()
    make_onednn_safe(model)
    raw_masks = raw_masks and getattr(model, 'mask_head', None) is not None
    if raw_masks:
        use_raw_masks(model)
    # ppdet_gcnet.compat (imported with ppdet_gcnet) makes ppdet 2.6's NMS traceable under PIR.
    import ppdet_gcnet  # noqa: F401
    static = paddle.jit.to_static(model, input_spec=INPUT_SPEC, full_graph=True)
    paddle.jit.save(static, os.path.join(output_dir, 'model'))
    cfg_path = os.path.join(output_dir, 'infer_cfg.yml')
    _dump_infer_config(cfg, cfg_path, [-1, 3, -1, -1], model)
    import yaml
    with open(cfg_path) as f:
        infer_cfg = yaml.safe_load(f)
    if label_list is not None:
        infer_cfg['label_list'] = list(label_list)
    if raw_masks:
        infer_cfg['mask_output'] = 'raw'
    with open(cfg_path, 'w') as f:
        yaml.safe_dump(infer_cfg, f, sort_keys=False)
    return output_dir

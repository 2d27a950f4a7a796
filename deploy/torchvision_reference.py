"""torchvision's Mask R-CNN R50-FPN as the outside reference of deploy/benchmark.py.

Optional: `available()` says why not when torch / torchvision do not import. Random weights
(seeded), eval mode, the same fixed workload as our models (`force_proposals`,
`force_detections`): RPN objectness and regression and the box regression zeroed, RPN NMS off, so
the box head sees 1000 anchors as proposals and every class's boxes are those proposals; score
threshold 0 and 100 detections kept. Its own transform resizes
(800 / 1333, as ours) and pads to a multiple of 32, so it runs on the same 800x1344 tensor; that
transform (normalise + resize of an already-sized image, a few ms) is inside its timing.
"""
import numpy as np

INSTALL_HINT = 'pip install torch==2.14.1 torchvision==0.29.1'


def available():
    """(True, versions) or (False, one line saying what is missing)."""
    try:
        import torch
        import torchvision
    except Exception as e:  # ImportError, or a broken build raising at import
        return False, f"torchvision reference skipped: {type(e).__name__}: {e} ({INSTALL_HINT})"
    return True, f"torch {torch.__version__}, torchvision {torchvision.__version__}"


class TorchvisionMaskRCNN:
    """Callable on our preprocessed inputs' source image; returns (boxes [N, 6], masks [N, M, M])
    in our output layout: class, score, x1, y1, x2, y2 and the mask head's probabilities."""

    def __init__(self, image_rgb, precision, threads, detections=100, size=(800, 1333)):
        import torch
        from torchvision.models.detection import maskrcnn_resnet50_fpn
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.torch = torch
        self.model = maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, min_size=size[0], max_size=size[1],
            rpn_nms_thresh=1.0, box_score_thresh=0.0, box_detections_per_img=detections).eval()
        with torch.no_grad():
            for layer in (self.model.rpn.head.cls_logits, self.model.rpn.head.bbox_pred,
                          self.model.roi_heads.box_predictor.bbox_pred):
                layer.weight.zero_()
                layer.bias.zero_()
        # Raw 28x28 mask probabilities out, as our exports give (its postprocess would paste
        # every mask onto the full image); the image is already at the network's size.
        self.model.transform.postprocess = lambda result, image_shapes, original: result
        self.precision = precision
        self.image = torch.from_numpy(np.ascontiguousarray(image_rgb.transpose(2, 0, 1))) \
            .float().div(255.0)

    def __call__(self, _inputs_np=None):
        torch = self.torch
        with torch.inference_mode():
            if self.precision == 'bf16':
                with torch.autocast('cpu', dtype=torch.bfloat16):
                    out = self.model([self.image])[0]
            else:
                out = self.model([self.image])[0]
        boxes = np.concatenate([out['labels'].float().numpy()[:, None],
                                out['scores'].float().numpy()[:, None],
                                out['boxes'].float().numpy()], axis=1)
        return boxes, out['masks'].float().numpy()[:, 0]

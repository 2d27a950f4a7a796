"""Export masks as the mask head's [N, 28, 28] probabilities instead of pasted full-size masks.

PaddleDetection's `MaskPostProcess` pastes every detection's mask onto a full-size canvas inside
the graph, through `grid_sample` on an [N, H, W, 2] grid: for 100 detections on an 800x1333 image
that is 100 x 1.07 M bilinear samples and about 1 GB of grids, measured at 13-20 s on 2 cores,
more than the whole network. Deploy pastes the few kept masks into their boxes instead
(`deploy/python/results.py`), touching only box pixels.
"""


class RawMaskOutput:
    """Stands in for `MaskPostProcess`: returns the mask head's probabilities unchanged
    ([N, M, M] float, or [1, 1, 1] of -1 when there is no detection). Keeps the replaced
    post-process's `binary_thresh`, which the export hands to deploy's paste."""

    def __init__(self, binary_thresh=0.5):
        self.binary_thresh = binary_thresh

    def __call__(self, mask_out, bboxes, bbox_num, origin_shape):
        return mask_out


def use_raw_masks(model):
    """Make `model` (a ppdet MaskRCNN) output raw mask probabilities; returns the model."""
    if not hasattr(model, 'mask_post_process'):
        raise ValueError(f"{type(model).__name__} has no mask_post_process to replace")
    model.mask_post_process = RawMaskOutput(
        getattr(model.mask_post_process, 'binary_thresh', 0.5))
    return model

"""Detections as mmdetection 2.x returns them: ppdet's BBoxPostProcess relabels a detection
whose box is empty after rescaling and clipping (zero width or height) as class -1, which every
consumer then drops; mmdetection keeps it with its class and score. `MMDetBBoxPostProcess`
is ppdet's, with the NMS labels kept."""
import paddle
from ppdet.core.workspace import register
from ppdet.modeling.post_process import BBoxPostProcess


@register
class MMDetBBoxPostProcess(BBoxPostProcess):
    def get_pred(self, bboxes, bbox_num, im_shape, scale_factor):
        # two-argument super: dy2static rewrites the bare form into one that recurses when the
        # export swaps in a subclass (the ONNX form)
        bboxes, pred, bbox_num = super(MMDetBBoxPostProcess, self).get_pred(
            bboxes, bbox_num, im_shape, scale_factor)
        return bboxes, paddle.concat([bboxes[:, 0:1], pred[:, 1:]], axis=1), bbox_num

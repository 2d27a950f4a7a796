"""Cascade R-CNN box head scoring as mmdetection's CascadeRoIHead does at test time."""
import paddle
import paddle.nn.functional as F
from ppdet.core.workspace import register
from ppdet.modeling.heads.cascade_head import CascadeHead


@register
class MMDetCascadeHead(CascadeHead):
    """ppdet's CascadeHead, except for the final class scores: mmdetection averages the stages'
    classification logits and applies one softmax; ppdet averages the stages' softmax
    probabilities. Training, box refinement and parameters are ppdet's unchanged."""

    def get_prediction(self, head_out_list):
        logits = paddle.add_n([scores for scores, _, _ in head_out_list])
        _, deltas, rois = head_out_list[-1]      # boxes from the last stage, as both do
        return F.softmax(logits / self.num_cascade_stages), deltas, rois

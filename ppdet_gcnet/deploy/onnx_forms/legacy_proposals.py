"""The legacy RPN proposals (ppdet_gcnet.legacy.proposals) without `generate_proposals`.

`ExportableLegacyRPNHead` is `LegacyRPNHead` with, at inference on one image, each level's
proposals from `level_proposals` with the op's +1 pixel conventions (`pixel_offset=True`) on the
sigmoid scores, clipped to the padded input, as `LegacyProposalGenerator` runs the op; the
levels' proposals are then sorted by score and the best `post_nms_top_n` kept, as the legacy
`collect_fpn_proposals` left them (the dygraph `LegacyRPNHead` does the same; ties keep level
order here).
"""
import paddle
import paddle.nn.functional as F

from ...legacy.proposals import LegacyRPNHead, padded_shape
from .proposals import level_proposals


class ExportableLegacyRPNHead(LegacyRPNHead):
    """LegacyRPNHead whose inference proposals avoid generate_proposals; one image per run."""

    def _gen_proposal(self, scores, bbox_deltas, anchors, inputs):
        if self.training:
            return super(ExportableLegacyRPNHead, self)._gen_proposal(scores, bbox_deltas,
                                                                       anchors, inputs)
        generator = self.test_proposal
        if generator.eta != 1.0:
            raise ValueError(f"adaptive NMS (eta={generator.eta}) has no ONNX form")
        im_hw = padded_shape(inputs)[0]
        rois, probs = [], []
        for level_scores, level_deltas, level_anchors in zip(scores, bbox_deltas, anchors):
            level_rois, level_probs = level_proposals(
                F.sigmoid(level_scores[0]), level_deltas[0], level_anchors, im_hw, generator,
                pixel_offset=True)
            rois.append(level_rois)
            probs.append(level_probs)
        rois, probs = paddle.concat(rois), paddle.concat(probs)
        total = paddle.shape(probs)[0:1]
        keep = paddle.minimum(total, paddle.full_like(total, generator.post_nms_top_n))
        order = paddle.argsort(-probs, stable=True)[:keep[0]]
        rois = paddle.gather(rois, order)
        return [rois], paddle.shape(rois)[0:1].astype('int32')

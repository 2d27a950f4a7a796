"""Legacy RPN proposals (fluid `generate_proposals` per FPN level, then `collect_fpn_proposals`).

Differences from ppdet's defaults, all restored here:
- boxes use the +1 pixel convention: an anchor's width is `x2 - x1 + 1`, decoded boxes end at
  `centre + w / 2 - 1`, NMS counts `+1` widths (`pixel_offset=True` of Paddle's op);
- proposals are clipped to the *padded* input (the legacy eval reader wrote the padded size into
  `im_info`), not to the resized image;
- scores are sigmoid probabilities (ppdet ranks raw logits; same order except for ties that
  the sigmoid creates in float32);
- the proposals collected over the levels are sorted by score (the RoI order decides which of
  two equal-score boxes NMS keeps later).
"""
import paddle
import paddle.nn.functional as F
from ppdet.core.workspace import register, serializable
from ppdet.modeling.proposal_generator.proposal_generator import ProposalGenerator
from ppdet.modeling.proposal_generator.rpn_head import RPNHead

from .anchors import LegacyAnchorGenerator


@register
@serializable
class LegacyProposalGenerator(ProposalGenerator):
    def __call__(self, scores, bbox_deltas, anchors, im_shape):
        top_n = self.pre_nms_top_n if self.topk_after_collect else self.post_nms_top_n
        rois, probs, rois_num = paddle.vision.ops.generate_proposals(
            F.sigmoid(scores), bbox_deltas, im_shape, anchors, paddle.ones_like(anchors),
            pre_nms_top_n=self.pre_nms_top_n, post_nms_top_n=top_n,
            nms_thresh=self.nms_thresh, min_size=self.min_size, eta=self.eta,
            pixel_offset=True, return_rois_num=True)
        return rois, probs, rois_num, self.post_nms_top_n


def padded_shape(inputs):
    """[batch, 2] (h, w) of the padded input batch, as the legacy `im_info` carried it."""
    image_hw = paddle.shape(inputs['image'])[2:4].astype('float32')
    return paddle.zeros_like(inputs['im_shape']) + image_hw


@register
class LegacyRPNHead(RPNHead):
    """ppdet's RPN head with the legacy anchors and proposals: its `anchor_generator` and
    `*_proposal` settings (plain dicts, as for RPNHead) build the Legacy* classes, and
    proposals are clipped to the padded input (see module doc)."""

    @classmethod
    def from_config(cls, cfg, input_shape):
        kwargs = super().from_config(cfg, input_shape)
        for key, legacy_cls in (('anchor_generator', LegacyAnchorGenerator),
                                ('train_proposal', LegacyProposalGenerator),
                                ('test_proposal', LegacyProposalGenerator)):
            if isinstance(cfg.get(key), dict):
                kwargs[key] = legacy_cls(**cfg[key])
        return kwargs

    def _gen_proposal(self, scores, bbox_deltas, anchors, inputs):
        inputs = dict(inputs, im_shape=padded_shape(inputs))
        if self.export_onnx or not paddle.in_dynamic_mode():
            return super()._gen_proposal(scores, bbox_deltas, anchors, inputs)
        # dygraph: like ppdet's, but the collected proposals are always sorted by score, as
        # `collect_fpn_proposals` left them (ppdet keeps level order below post_nms_top_n)
        prop_gen = self.train_proposal if self.training else self.test_proposal
        im_shape = inputs['im_shape']
        rois_per_image, counts = [], []
        for i in range(im_shape.shape[0]):
            levels = [prop_gen(scores=s[i:i + 1], bbox_deltas=d[i:i + 1], anchors=a,
                               im_shape=im_shape[i:i + 1])
                      for s, d, a in zip(scores, bbox_deltas, anchors)]
            rois = paddle.concat([level[0] for level in levels])
            probs = paddle.concat([level[1] for level in levels]).flatten()
            keep = min(int(probs.shape[0]), levels[0][3])
            _, order = paddle.topk(probs, keep)
            rois_per_image.append(paddle.gather(rois, order))
            counts.append(keep)
        return rois_per_image, paddle.to_tensor(counts, dtype='int32')

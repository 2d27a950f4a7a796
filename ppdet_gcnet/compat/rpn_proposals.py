"""RPN proposal collection: per-image proposal counts concatenated as 0-D tensors.

Defect: `ppdet.modeling.proposal_generator.rpn_head.RPNHead._gen_proposal` (PaddleDetection 2.6)
collects each image's proposal count as `paddle.shape(rois)[0]` and concatenates the list.
Since Paddle 2.5 an integer index gives a 0-D tensor and `paddle.concat` of 0-D tensors raises
"The axis is expected to be in range of [0, 0)", so every Mask R-CNN forward pass (train, eval,
infer) fails before the RoI heads.

Restores: PaddleDetection PRs #8112 and #8423 (develop, 2023; cherry-picked to release/2.6 as
#8653, after the 2.6.0 wheel was built) collect `paddle.shape(rois)[0:1]` (a 1-D count), so the
method returns `rois_num` of shape [batch_size], one count per image, as under Paddle 2.4.

Fix: `RPNHead._gen_proposal` is replaced by `gen_proposal` below (same contract, 1-D counts).
The ONNX-export branch of the original returns a count without concatenating and is kept.
"""
import types

import numpy as np

from ._patching import leading_count, original, replace

NAME = 'rpn_proposals'


def _rpn_head_class():
    from ppdet.modeling.proposal_generator.rpn_head import RPNHead
    return RPNHead


def gen_proposal(self, scores, bbox_deltas, anchors, inputs):
    """Top proposals per image over all FPN levels; returns (list of rois, counts [batch])."""
    import paddle
    if self.export_onnx:
        return original(gen_proposal)(self, scores, bbox_deltas, anchors, inputs)
    prop_gen = self.train_proposal if self.training else self.test_proposal
    im_shape = inputs['im_shape']
    rois_per_image, counts = [], []
    batch_size = paddle.slice(paddle.shape(im_shape), [0], [0], [1])
    # One image at a time: proposals of different images must not compete in one top-k.
    for i in range(batch_size):
        level_rois, level_probs = [], []
        for level_scores, level_deltas, level_anchors in zip(scores, bbox_deltas, anchors):
            rois, probs, _, post_nms_top_n = prop_gen(
                scores=level_scores[i:i + 1], bbox_deltas=level_deltas[i:i + 1],
                anchors=level_anchors, im_shape=im_shape[i:i + 1])
            level_rois.append(rois)
            level_probs.append(probs)
        if len(scores) > 1:
            rois = paddle.concat(level_rois)
            probs = paddle.concat(level_probs).flatten()
            if paddle.shape(probs)[0] > post_nms_top_n:
                _, keep = paddle.topk(probs, post_nms_top_n)
                rois = paddle.gather(rois, keep)
        else:
            rois = level_rois[0]
        rois_per_image.append(rois)
        counts.append(leading_count(rois))
    return rois_per_image, paddle.concat(counts)


def probe():
    """Run the installed `_gen_proposal` on one 2x2 feature map; True if it fails or if the
    counts it returns are not one per image."""
    import paddle
    from ppdet.modeling.proposal_generator.proposal_generator import ProposalGenerator
    generator = ProposalGenerator(pre_nms_top_n=4, post_nms_top_n=3, min_size=0.)
    head = types.SimpleNamespace(export_onnx=False, training=False, test_proposal=generator,
                                 train_proposal=generator)
    rng = np.random.RandomState(0)
    anchors = paddle.to_tensor(np.array([[0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16],
                                         [8, 8, 16, 16]], 'float32'))
    scores = [paddle.to_tensor(rng.rand(2, 1, 2, 2).astype('float32'))]
    deltas = [paddle.zeros([2, 4, 2, 2], 'float32')]
    inputs = {'im_shape': paddle.to_tensor([[16., 16.], [16., 16.]])}
    try:
        rois, rois_num = _rpn_head_class()._gen_proposal(head, scores, deltas, [anchors], inputs)
    except (ValueError, RuntimeError):
        return True
    counts = rois_num.numpy()
    return counts.shape != (2, ) or [int(r.shape[0]) for r in rois] != counts.tolist()


def replaced_attributes():
    """(owner, attribute name) pairs that `apply()` replaces."""
    return [(_rpn_head_class(), '_gen_proposal')]


def apply():
    return replace(_rpn_head_class(), '_gen_proposal', gen_proposal, NAME)

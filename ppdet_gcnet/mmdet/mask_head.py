"""Cascade Mask R-CNN mask prediction as mmdetection 2.x's CascadeRoIHead makes it at test time:
every stage has its own mask head (mmdetection builds `num_stages` FCNMaskHeads), all run on the
final detections, and the mask is the mean of their sigmoid probabilities. ppdet's CascadeRCNN
has one mask head.

`MMDetCascadeMaskHead` is ppdet's MaskHead (its `head` / `mask_fcn_logits` are the last stage's)
plus the earlier stages' heads (`stage_heads`, `stage_logits`). Training: each earlier stage's head
is trained like the last one, on the last stage's RoIs and mask targets (mmdetection trains stage
s on stage s's RoIs), its loss reported as `loss_mask_stage{s}`.
"""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import KaimingNormal
from ppdet.core.workspace import create, register
from ppdet.modeling.heads.mask_head import MaskHead


@register
class MMDetCascadeMaskHead(MaskHead):
    __shared__ = ['num_classes', 'export_onnx']
    __inject__ = ['mask_assigner']

    def __init__(self, head, roi_extractor=None, mask_assigner='MaskAssigner', num_classes=80,
                 share_bbox_feat=False, export_onnx=False, num_cascade_stages=3,
                 stage_heads=()):
        kwargs = {} if roi_extractor is None else {'roi_extractor': roi_extractor}
        super().__init__(head, mask_assigner=mask_assigner, num_classes=num_classes,
                         share_bbox_feat=share_bbox_feat, export_onnx=export_onnx, **kwargs)
        self.num_cascade_stages = num_cascade_stages
        if len(stage_heads) != num_cascade_stages - 1:
            raise ValueError(f"MMDetCascadeMaskHead: {num_cascade_stages} stages need "
                             f"{num_cascade_stages - 1} earlier heads, got {len(stage_heads)}")
        self.stage_heads = nn.LayerList(stage_heads)
        self.stage_logits = nn.LayerList([
            nn.Conv2D(self.in_channels, num_classes, 1, weight_attr=paddle.ParamAttr(
                initializer=KaimingNormal(fan_in=num_classes)))
            for _ in stage_heads])

    @classmethod
    def from_config(cls, cfg, input_shape):
        kwargs = super().from_config(cfg, input_shape)
        stages = cfg.get('num_cascade_stages', 3)
        kwargs['stage_heads'] = [create(cfg['head'], input_shape=input_shape)
                                 for _ in range(stages - 1)]
        return kwargs

    def stage_mask_logits(self, rois_feat):
        """[N, num_classes, M, M] logits of every stage, first to last."""
        pairs = list(zip(self.stage_heads, self.stage_logits)) + [(self.head,
                                                                   self.mask_fcn_logits)]
        return [logits(head(rois_feat)) for head, logits in pairs]

    def mask_probabilities(self, rois_feat):
        """mmdetection's merged cascade mask: the mean of the stages' sigmoid probabilities."""
        logits = self.stage_mask_logits(rois_feat)
        total = F.sigmoid(logits[0])
        for logit in logits[1:]:
            total = total + F.sigmoid(logit)
        return total / float(len(logits))

    def forward_train(self, body_feats, rois, rois_num, inputs, targets, bbox_feat):
        tgt_labels, _, tgt_gt_inds = targets
        rois, rois_num, tgt_classes, tgt_masks, mask_index, tgt_weights = self.mask_assigner(
            rois, tgt_labels, tgt_gt_inds, inputs)
        if self.share_bbox_feat:
            rois_feat = paddle.gather(bbox_feat, mask_index)
        else:
            rois_feat = self.roi_extractor(body_feats, rois, rois_num)
        *earlier, last = self.stage_mask_logits(rois_feat)
        losses = {'loss_mask': self.get_loss(last, tgt_classes, tgt_masks, tgt_weights)}
        for stage, logits in enumerate(earlier):
            losses[f'loss_mask_stage{stage}'] = self.get_loss(logits, tgt_classes, tgt_masks,
                                                              tgt_weights)
        return losses

    def forward_test(self, body_feats, rois, rois_num, scale_factor, feat_func=None):
        if not self.export_onnx and rois.shape[0] == 0:
            return paddle.full([1, 1, 1], -1)
        rois_feat = self.roi_extractor(body_feats, [rois[:, 2:]], rois_num)
        if self.share_bbox_feat:
            rois_feat = feat_func(rois_feat)
        probs = self.mask_probabilities(rois_feat)
        if self.num_classes == 1:
            return probs[:, 0, :, :]
        labels = rois[:, 0].astype('int64')
        rows = paddle.arange(paddle.shape(labels)[0], dtype='int64')
        return paddle.gather_nd(probs, paddle.stack([rows, labels], 1))

"""PyTorch reference models with mmdetection's parameter names and computation, built from
torchvision (ResNet / ResNeXt bottlenecks: stride on the 3x3 conv = mmdetection's style
'pytorch'; deform_conv2d; roi_align; nms) and mmcv-lite (`ContextBlock`, the GC block
mmdetection plugs in after conv3 + bn3). Nothing here comes from mmdetection's code: the
computations follow its documented behaviour (see each function), so our converted models can be
checked against an independent implementation without downloading a checkpoint.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from mmcv.cnn import ContextBlock
from torchvision.ops import deform_conv2d, roi_align

BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}


class DeformConv2dPack(nn.Module):
    """mmcv's DCN v1 layout: `weight` [out, in/groups, 3, 3] and `conv_offset` (3x3 conv to
    2 * 9 offsets, (dy, dx) per kernel tap), no modulation."""

    def __init__(self, conv):
        super().__init__()
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.conv_offset = nn.Conv2d(conv.in_channels, 18, 3, stride=conv.stride, padding=1)

    def forward(self, x):
        return deform_conv2d(x, self.conv_offset(x), self.weight, stride=self.stride,
                             padding=self.padding, dilation=self.dilation)


class MMDetResNet(nn.Module):
    """torchvision's ResNet trunk under mmdetection's names (conv1, bn1, layer1..4), returning
    c2..c5; GC (ContextBlock) after bn3 of every bottleneck in c3-c5 when `gc_ratio` is set;
    DCN in the 3x3 convs of c3-c5 when `dcn`."""

    def __init__(self, depth=50, groups=1, width_per_group=64, gc_ratio=None, dcn=False):
        super().__init__()
        trunk = torchvision.models.resnet.ResNet(
            torchvision.models.resnet.Bottleneck, BLOCKS[depth], groups=groups,
            width_per_group=width_per_group)
        self.conv1, self.bn1 = trunk.conv1, trunk.bn1
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4)
        for layer in (self.layer2, self.layer3, self.layer4):
            for block in layer:
                if dcn:
                    block.conv2 = DeformConv2dPack(block.conv2)
                if gc_ratio:
                    block.context_block = ContextBlock(block.bn3.num_features, gc_ratio)
                    block.bn3.register_forward_hook(
                        lambda module, args, out, gc=block.context_block: gc(out))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs


class ConvModule(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)

    def forward(self, x):
        return self.conv(x)


class MMDetFPN(nn.Module):
    """mmdetection's FPN (add_extra_convs False): 1x1 laterals, top-down nearest x2 upsampling
    and sum, 3x3 outputs, P6 = max_pool(P5, kernel 1, stride 2)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3)
                                       for _ in in_channels)

    def forward(self, feats):
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], scale_factor=2.0,
                                                              mode='nearest')
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


class RPNHead(nn.Module):
    def __init__(self, channels, num_anchors=3):
        super().__init__()
        self.rpn_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(channels, num_anchors, 1)
        self.rpn_reg = nn.Conv2d(channels, num_anchors * 4, 1)

    def forward(self, feats):
        outs = []
        for f in feats:
            x = F.relu(self.rpn_conv(f))
            outs.append((self.rpn_cls(x), self.rpn_reg(x)))
        return outs


class BBoxHead(nn.Module):
    """Shared2FCBBoxHead: flatten 7x7 RoI features (C, H, W order), fc + ReLU twice, fc_cls
    (num_classes + 1, background last), fc_reg (4 per class, or 4 class-agnostic)."""

    def __init__(self, channels, fc, num_classes, agnostic=False):
        super().__init__()
        self.shared_fcs = nn.ModuleList([nn.Linear(channels * 49, fc), nn.Linear(fc, fc)])
        self.fc_cls = nn.Linear(fc, num_classes + 1)
        self.fc_reg = nn.Linear(fc, 4 if agnostic else 4 * num_classes)

    def forward(self, x):
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class MaskHead(nn.Module):
    """FCNMaskHead: 3x3 convs + ReLU, ConvTranspose2d(2, 2) + ReLU, 1x1 logits per class."""

    def __init__(self, channels, num_convs, num_classes):
        super().__init__()
        self.convs = nn.ModuleList(ConvModule(channels, channels, 3) for _ in range(num_convs))
        self.upsample = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.conv_logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.conv_logits(F.relu(self.upsample(x)))


class RoIHead(nn.Module):
    def __init__(self, channels, fc, num_classes, mask_convs, cascade_stages=0):
        super().__init__()
        if cascade_stages:
            self.bbox_head = nn.ModuleList(BBoxHead(channels, fc, num_classes, agnostic=True)
                                           for _ in range(cascade_stages))
            self.mask_head = nn.ModuleList(MaskHead(channels, mask_convs, num_classes)
                                           for _ in range(cascade_stages))
        else:
            self.bbox_head = BBoxHead(channels, fc, num_classes)
            self.mask_head = MaskHead(channels, mask_convs, num_classes)


class MMDetTwoStage(nn.Module):
    def __init__(self, depth=50, groups=1, width_per_group=64, gc_ratio=None, dcn=False,
                 fpn_channels=256, fc=1024, num_classes=80, mask_convs=4, cascade_stages=0):
        super().__init__()
        self.backbone = MMDetResNet(depth, groups, width_per_group, gc_ratio, dcn)
        self.neck = MMDetFPN([256, 512, 1024, 2048], fpn_channels)
        self.rpn_head = RPNHead(fpn_channels)
        self.roi_head = RoIHead(fpn_channels, fc, num_classes, mask_convs, cascade_stages)

    def features(self, x):
        return self.neck(self.backbone(x))


def randomize(model, seed):
    """Seeded non-trivial values for every tensor: BN statistics and affine included, GC's
    zero-initialised last conv and DCN's zero-initialised offsets too (else they test nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                tensor.fill_(1000)
            elif name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.5 + 0.5)
            elif name.endswith('running_mean'):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif tensor.dim() == 1 or name.endswith(('.1.weight', '.1.bias')) and tensor.dim() == 3:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1
                             + (1.0 if name.endswith('weight') and 'bn' in name else 0.0))
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
                if 'upsample' in name:       # ConvTranspose2d weight is [in, out, k, k]
                    fan_in = tensor.shape[0]
                scale = math.sqrt(1.0 / fan_in)
                if 'conv_offset' in name:   # offsets of a pixel or two on these features
                    scale *= 0.1
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * scale)
    return model.eval()


def save_mmdet_checkpoint(model, path, zipped=True, meta=None):
    """mmdetection's layout: {'meta': {...}, 'state_dict': {...}}."""
    meta = {'mmdet_version': '2.x', 'CLASSES': tuple(f'class{i}' for i in range(80)),
            'epoch': 12, 'iter': 87960, **(meta or {})}
    torch.save({'meta': meta, 'state_dict': model.state_dict()}, path,
               _use_new_zipfile_serialization=zipped)


# ---------------------------------------------------------------- test-time pieces

def mmdet_anchors(strides=(4, 8, 16, 32, 64), ratios=(0.5, 1.0, 2.0), scale=8,
                  sizes=None):
    """mmdetection 2.x AnchorGenerator for an RPN: base anchors of size stride * scale centred
    at (0, 0), w = size / sqrt(ratio), h = size * sqrt(ratio) (ratios-major, one scale), shifted
    by (x * stride, y * stride) for each location, locations row-major, anchors innermost.
    `sizes`: list of (H, W) per level. Returns one [H * W * A, 4] array per level."""
    out = []
    for stride, (h, w) in zip(strides, sizes):
        h_ratios = np.sqrt(np.asarray(ratios))
        ws = stride * scale / h_ratios
        hs = stride * scale * h_ratios
        base = np.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], axis=1)
        sx, sy = np.meshgrid(np.arange(w) * stride, np.arange(h) * stride)
        shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], axis=1)
        out.append((shifts[:, None, :] + base[None]).reshape(-1, 4).astype('float32'))
    return out


def map_roi_levels(rois, num_levels=4, finest_scale=56):
    """mmdetection SingleRoIExtractor: level = floor(log2(sqrt(w * h) / 56 + 1e-6)), clamped."""
    scale = torch.sqrt((rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1]))
    return torch.floor(torch.log2(scale / finest_scale + 1e-6)).clamp(0, num_levels - 1).long()


def roi_features(feats, rois, size, strides=(4, 8, 16, 32)):
    """RoIAlign(aligned=True, sampling_ratio=0) per mapped level; `rois` [K, 4] of image 0."""
    levels = map_roi_levels(rois)
    out = feats[0].new_zeros((rois.shape[0], feats[0].shape[1], size, size))
    boxes = torch.cat([rois.new_zeros((rois.shape[0], 1)), rois], dim=1)
    for lvl, stride in enumerate(strides):
        idx = torch.nonzero(levels == lvl).flatten()
        if idx.numel():
            out[idx] = roi_align(feats[lvl], boxes[idx], size, spatial_scale=1.0 / stride,
                                 sampling_ratio=0, aligned=True)
    return out


def decode_deltas(anchors, deltas, stds, max_hw, clamp_shrink=True):
    """mmdetection 2.x DeltaXYWHBBoxCoder.decode (means 0): centre/size form without +1,
    dw/dh clamped to +-|log(16/1000)| (`clamp_shrink=False`: the upper bound only), boxes
    clipped to the image."""
    max_ratio = abs(math.log(16 / 1000))
    deltas = deltas * deltas.new_tensor(stds)
    px, py = (anchors[:, 0] + anchors[:, 2]) * 0.5, (anchors[:, 1] + anchors[:, 3]) * 0.5
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    low = -max_ratio if clamp_shrink else None
    dw, dh = deltas[:, 2].clamp(low, max_ratio), deltas[:, 3].clamp(low, max_ratio)
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * deltas[:, 0], py + ph * deltas[:, 1]
    h, w = max_hw
    return torch.stack([(gx - 0.5 * gw).clamp(0, w), (gy - 0.5 * gh).clamp(0, h),
                        (gx + 0.5 * gw).clamp(0, w), (gy + 0.5 * gh).clamp(0, h)], dim=1)


def rpn_proposals(rpn_outs, anchors, image_hw, nms_pre=1000, max_per_img=1000, iou=0.7,
                  min_size=0.0, clamp_shrink=True):
    """mmdetection 2.x RPNHead test: per level the nms_pre highest sigmoid scores (locations
    row-major, anchors innermost), decoded and clipped, empty boxes dropped, NMS per level,
    then the max_per_img best of all levels. `min_size` > 0 drops boxes narrower than that
    instead of only empty ones; `clamp_shrink` as in decode_deltas."""
    from torchvision.ops import batched_nms
    boxes, scores, levels = [], [], []
    for level, ((cls, reg), level_anchors) in enumerate(zip(rpn_outs, anchors)):
        score = cls[0].permute(1, 2, 0).reshape(-1).sigmoid()
        delta = reg[0].permute(1, 2, 0).reshape(-1, 4)
        level_anchors = torch.as_tensor(level_anchors)
        if score.numel() > nms_pre:
            score, keep = score.topk(nms_pre)
            delta, level_anchors = delta[keep], level_anchors[keep]
        box = decode_deltas(level_anchors, delta, (1.0, 1.0, 1.0, 1.0), image_hw, clamp_shrink)
        bw, bh = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        valid = (bw >= min_size) & (bh >= min_size) if min_size > 0 else (bw > 0) & (bh > 0)
        boxes.append(box[valid])
        scores.append(score[valid])
        levels.append(torch.full((int(valid.sum()),), level))
    boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
    keep = batched_nms(boxes, scores, levels, iou)[:max_per_img]
    return boxes[keep], scores[keep]


# ---------------------------------------------------------------- mmdetection 2.x simple_test

RCNN_STDS = (0.1, 0.1, 0.2, 0.2)                       # bbox_head.bbox_coder.target_stds
CASCADE_STDS = ((0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))


def multiclass_nms(boxes, scores, score_thr=0.05, iou=0.5, max_per_img=100):
    """mmdetection's multiclass_nms: `boxes` [K, C, 4] (class-specific) or [K, 4], `scores`
    [K, C + 1] softmax with background last. Every (box, class) pair scoring above score_thr,
    NMS within each class, the max_per_img best overall. -> boxes [D, 4], scores [D], labels [D]
    (sorted by score)."""
    from torchvision.ops import batched_nms
    num_classes = scores.shape[1] - 1
    if boxes.dim() == 2:
        boxes = boxes[:, None, :].expand(-1, num_classes, 4)
    scores = scores[:, :-1]
    labels = torch.arange(num_classes).view(1, -1).expand_as(scores)
    boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
    valid = scores > score_thr
    boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
    keep = batched_nms(boxes, scores, labels, iou)[:max_per_img]
    return boxes[keep], scores[keep], labels[keep]


def decode_per_class(rois, deltas, stds, image_hw):
    """BBoxHead.get_bboxes' decoding: deltas [K, 4C] (or [K, 4]) against rois [K, 4] ->
    [K, C, 4] (or [K, 4]), clipped to the image."""
    if deltas.shape[1] == 4:
        return decode_deltas(rois, deltas, stds, image_hw)
    k, c4 = deltas.shape
    boxes = decode_deltas(rois.repeat_interleave(c4 // 4, dim=0), deltas.reshape(-1, 4), stds,
                          image_hw)
    return boxes.reshape(k, c4 // 4, 4)


def paste_masks(probs, boxes, image_hw, threshold=0.5):
    """FCNMaskHead.get_seg_masks as mmdetection runs it on GPU (skip_empty False): each [M, M]
    probability map resampled onto the whole image by bilinear grid sampling (pixel centres
    +0.5, box edges at -1 / 1, align_corners False, zeros outside), then `>= threshold`
    (None: the probabilities)."""
    h, w = image_hw
    x0, y0, x1, y1 = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 3:4]
    ys = (torch.arange(h, dtype=torch.float32) + 0.5)[None]
    xs = (torch.arange(w, dtype=torch.float32) + 0.5)[None]
    ys = (ys - y0) / (y1 - y0) * 2 - 1
    xs = (xs - x0) / (x1 - x0) * 2 - 1
    grid = torch.stack([xs[:, None, :].expand(-1, h, -1), ys[:, :, None].expand(-1, -1, w)], 3)
    pasted = F.grid_sample(probs[:, None], grid, align_corners=False)[:, 0]
    return pasted if threshold is None else pasted >= threshold


def bbox_stage(head, feats, rois):
    with torch.no_grad():
        return head(roi_features(feats, rois, 7))


def simple_test(ref, x, **kwargs):
    """mmdetection 2.x TwoStageDetector.simple_test on image `x` (see run_from_features)."""
    with torch.no_grad():
        feats = ref.features(torch.from_numpy(x))
        return run_from_features(ref, feats, ref.rpn_head(feats), tuple(x.shape[2:]), **kwargs)


def run_from_features(ref, feats, rpn_outs, image_hw, proposals=None, detections=None,
                       score_thr=0.05, nms_iou=0.5, max_per_img=100, rpn_nms_pre=1000,
                       rpn_max=1000):
    """mmdetection 2.x simple_test (rescale with scale factor 1, one image) from FPN features
    and RPN outputs, Mask R-CNN or Cascade Mask R-CNN by the reference's roi_head. To compare
    stage by stage, `proposals` [K, 4] replace the RPN's and `detections` (boxes [D, 4], labels
    [D]) the box head's. Returns {'proposals', 'cls_score' (logits; the stages' mean for a
    cascade), 'bbox_pred' and 'rois' (the last stage's), 'boxes', 'scores', 'labels',
    'mask_probs' [D, 28, 28], 'masks' [D, H, W] bool}."""
    out = {}
    with torch.no_grad():
        if proposals is None:
            anchors = mmdet_anchors(sizes=[tuple(f.shape[2:]) for f in feats])
            proposals, _ = rpn_proposals(rpn_outs, anchors, image_hw, nms_pre=rpn_nms_pre,
                                         max_per_img=rpn_max)
        feats = feats[:4]
        out['proposals'] = rois = proposals
        heads = ref.roi_head.bbox_head
        if isinstance(heads, nn.ModuleList):          # CascadeRoIHead.simple_test
            logits = []
            for stage, head in enumerate(heads):
                cls_score, bbox_pred = bbox_stage(head, feats, rois)
                logits.append(cls_score)
                if stage < len(heads) - 1:            # class-agnostic regression
                    rois = decode_deltas(rois, bbox_pred, CASCADE_STDS[stage], image_hw)
            cls_score = torch.stack(logits).sum(0) / len(logits)
            stds = CASCADE_STDS[-1]
            mask_heads = list(ref.roi_head.mask_head)
        else:
            cls_score, bbox_pred = bbox_stage(heads, feats, rois)
            stds = RCNN_STDS
            mask_heads = [ref.roi_head.mask_head]
        out.update(cls_score=cls_score, bbox_pred=bbox_pred, rois=rois)
        boxes = decode_per_class(rois, bbox_pred, stds, image_hw)
        out['boxes'], out['scores'], out['labels'] = multiclass_nms(
            boxes, torch.softmax(cls_score, dim=1), score_thr, nms_iou, max_per_img)
        det_boxes, det_labels = detections if detections is not None else (out['boxes'],
                                                                            out['labels'])
        mask_feats = roi_features(feats, det_boxes, 14)
        probs = torch.stack([head(mask_feats).sigmoid() for head in mask_heads]).mean(0)
        out['mask_probs'] = probs[torch.arange(len(probs)), det_labels]
        out['masks'] = paste_masks(out['mask_probs'], det_boxes, image_hw)
    return out


def calibrate(ref, x, cls_gain=2.0, rpn_cls_gain=0.3, rpn_reg_gain=0.25, mask_gain=4.0):
    """Seeded random weights make activations grow through deep trunks (RPN scores saturate),
    give near-uniform class scores (no box above 0.05) and small RPN deltas. Calibrated: every
    BN's running statistics are its input's statistics on image `x` (one forward pass in
    training mode, cumulative averaging), the classifier is sharpened so that detections exist,
    the mask logits so that masks are not all near the 0.5 threshold, and the RPN logits and
    deltas scaled to a trained model's range (saturated sigmoid scores tie, and each framework
    breaks ties its own way)."""
    norms = [m for m in ref.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        ref.features(torch.from_numpy(x))
    for bn in norms:
        bn.num_batches_tracked.fill_(1000)
    ref.eval()
    with torch.no_grad():
        heads = ref.roi_head.bbox_head
        for head in heads if isinstance(heads, nn.ModuleList) else [heads]:
            head.fc_cls.weight.mul_(cls_gain)
        ref.rpn_head.rpn_reg.weight.mul_(rpn_reg_gain)
        ref.rpn_head.rpn_cls.weight.mul_(rpn_cls_gain)
        heads = ref.roi_head.mask_head
        for head in heads if isinstance(heads, nn.ModuleList) else [heads]:
            head.conv_logits.weight.mul_(mask_gain)
    return ref

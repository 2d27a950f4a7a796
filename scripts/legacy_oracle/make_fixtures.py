"""Regenerate tests/fixtures/legacy/ with the legacy static-graph code itself (the oracle).

Runs under Python 3.8 + paddlepaddle 1.8.5 with the legacy `static/` tree on the path (set-up:
docs/weights.md, "Legacy-exact pipeline"); never in CI. For each row (add, mul) and two reader
sizes it builds the legacy Mask R-CNN, fills it with `seeded_weights.legacy_weight`, runs the
legacy reader on `image.png` and the eval program, and saves every stage: anchors, RPN
scores/deltas, per-level and collected proposals, RoI level assignment, a sample of RoI
features, class probabilities and decoded/clipped boxes (a sample of RoIs), the top-100
detections, the mask probabilities and the masks pasted by the legacy `mask2out`.

    python make_fixtures.py --static /path/to/static --out tests/fixtures/legacy \
        [--weights-dir DIR]   # also save_persistables the seeded weights there (per row)
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = {'add': 'mask_rcnn_r50_vd_fpn_gcb_add_r16_2x.yml',
        'mul': 'mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x.yml'}
# (target_size, max_size) of the legacy ResizeImage on image.png (96x128): a downscale and two
# upscales; the model runs at the two larger (s320 reaches RoI levels 4 and 5).
SIZES = {'s80': (80, 128), 's160': (160, 224), 's320': (320, 448)}
MODEL_SIZES = ('s160', 's320')
FULL_IMAGE_SIZES = ('s80', 's160')   # preprocessed tensor stored whole; s320: every 7th pixel
IMAGE_HW = (96, 128)
FEAT_SAMPLE_ROIS = 6        # RoI features stored for this many RoIs (32 channels each)
BOX_SAMPLE_ROIS = 30        # class probabilities and boxes stored for this many RoIs


def make_image(path):
    """A deterministic picture with edges at several scales (lossless PNG: decodes exactly)."""
    import cv2
    h, w = IMAGE_HW
    rng = np.random.RandomState(7)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    im = np.stack([xx / w * 200, yy / h * 180, (xx + yy) / (w + h) * 150], -1)
    for _ in range(12):
        x0, y0 = rng.randint(0, w - 8), rng.randint(0, h - 8)
        x1, y1 = x0 + rng.randint(6, 48), y0 + rng.randint(6, 40)
        color = [int(c) for c in rng.randint(0, 256, 3)]
        if rng.rand() < 0.5:
            cv2.rectangle(im, (x0, y0), (x1, y1), color, -1)
        else:
            cv2.circle(im, (x0, y0), int(rng.randint(4, 20)), color, -1)
    im = np.clip(im + rng.normal(0, 6, im.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(path, im)


def legacy_reader(image_path, target_size, max_size):
    from ppdet.data.transform.operators import (DecodeImage, NormalizeImage, Permute,
                                                ResizeImage)
    from ppdet.data.transform.batch_operators import PadBatch
    sample = {'im_file': image_path, 'im_id': np.array([0])}
    for op in (DecodeImage(to_rgb=True),
               NormalizeImage(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                              is_scale=True, is_channel_first=False),
               ResizeImage(target_size=target_size, max_size=max_size, interp=1,
                           use_cv2=True),
               Permute(to_bgr=False, channel_first=True)):
        sample = op(sample)
    resized_hw = sample['image'].shape[1:]
    im_info_resize = np.array(sample['im_info'], np.float32)
    sample = PadBatch(pad_to_stride=32, use_padded_im_info=True)([sample])[0]
    return sample, resized_hw, im_info_resize


def build(cfg_path):
    import paddle.fluid as fluid
    from ppdet.core.workspace import create, load_config
    cfg = load_config(cfg_path)
    prog, startup = fluid.Program(), fluid.Program()
    with fluid.program_guard(prog, startup), fluid.unique_name.guard():
        model = create(cfg.architecture)
        feed_vars, _ = model.build_inputs(image_shape=[3, None, None],
                                          fields=['image', 'im_info', 'im_id', 'im_shape'],
                                          use_dataloader=False)
        fetches = model.eval(feed_vars)
    return prog.clone(for_test=True), startup, fetches


def stage_vars(prog):
    """Names of the stage outputs, found by op type in the main block."""
    ops = prog.global_block().ops
    found = {'anchors': [], 'gp_scores': [], 'gp_deltas': [], 'gp_rois': [], 'gp_probs': []}
    for op in ops:
        if op.type == 'anchor_generator':
            found['anchors'].append(op.output('Anchors')[0])
        elif op.type == 'generate_proposals':
            found['gp_scores'].append(op.input('Scores')[0])
            found['gp_deltas'].append(op.input('BboxDeltas')[0])
            found['gp_rois'].append(op.output('RpnRois')[0])
            found['gp_probs'].append(op.output('RpnRoiProbs')[0])
        elif op.type == 'collect_fpn_proposals':
            found['rois'] = op.output('FpnRois')[0]
        elif op.type == 'distribute_fpn_proposals' and 'dist_rois' not in found:
            found['dist_rois'] = op.output('MultiFpnRois')
            found['restore'] = op.output('RestoreIndex')[0]
        elif op.type == 'box_coder':
            found['decoded'] = op.output('OutputBox')[0]
        elif op.type == 'multiclass_nms':
            found['clipped'] = op.input('BBoxes')[0]
            found['cls_prob'] = op.input('Scores')[0]
    # the RoI features: input of the first fc (fc6) of the box head
    for op in ops:
        if op.type == 'mul' and op.input('Y')[0] == 'fc6_w':
            found['roi_feat'] = op.input('X')[0]
            break
    return found


def run_row(row, static_dir, image_path, out_dir, weights_dir):
    import paddle.fluid as fluid
    sys.path.insert(0, HERE)
    from seeded_weights import legacy_weight
    from ppdet.utils.coco_eval import mask2out

    prog, startup, fetches = build(os.path.join(static_dir, 'configs', 'gcnet', ROWS[row]))
    exe = fluid.Executor(fluid.CPUPlace())
    scope = fluid.global_scope()
    exe.run(startup)
    params = [v for v in prog.list_vars() if v.persistable and v.name not in
              ('feed', 'fetch') and not v.name.startswith('learning_rate')]
    shapes = {}
    for var in params:
        tensor = scope.find_var(var.name)
        if tensor is None:
            continue
        tensor = tensor.get_tensor()
        shape = np.array(tensor).shape
        tensor.set(legacy_weight(var.name, shape), fluid.CPUPlace())
        shapes[var.name] = list(shape)
    if weights_dir:
        target = os.path.join(weights_dir, 'mask_rcnn_r50_vd_fpn_gcb_%s_r16_2x' % row)
        fluid.io.save_persistables(exe, target, prog)
        print('saved seeded legacy weights to', target)
    names = stage_vars(prog)
    for size_name in MODEL_SIZES:
        sample, resized_hw, im_info_resize = legacy_reader(image_path, *SIZES[size_name])
        image = sample['image'][None].astype(np.float32)
        im_info = np.array(sample['im_info'], np.float32)[None]
        im_shape = np.array([IMAGE_HW[0], IMAGE_HW[1], 1], np.float32)[None]
        feed = {'image': image, 'im_info': im_info, 'im_shape': im_shape,
                'im_id': np.array([[0]], np.int64)}
        flat = (names['anchors'] + names['gp_scores'] + names['gp_deltas'] + names['gp_rois']
                + names['gp_probs'] + [names['rois']] + names['dist_rois']
                + [names['restore'], names['roi_feat'], names['cls_prob'], names['decoded'],
                   names['clipped']])
        outs = exe.run(prog, feed=feed, fetch_list=flat + [fetches['bbox'], fetches['mask']],
                       return_numpy=False)
        arrays = [np.array(o) for o in outs]
        it = iter(arrays)
        take = lambda n: [next(it) for _ in range(n)]
        anchors = take(5)
        gp_scores, gp_deltas, gp_rois, gp_probs = take(5), take(5), take(5), take(5)
        rois, = take(1)
        dist = take(len(names['dist_rois']))
        restore, roi_feat, cls_prob, decoded, clipped, bbox, mask = take(7)

        level = np.concatenate([np.full(len(d), 2 + i, np.int8) for i, d in enumerate(dist)])
        # RoI i's features are row restore[i] of the level-sorted concatenation
        level_of_roi = level[restore.reshape(-1)]
        rng = np.random.RandomState(11)
        feat_rois = np.sort(rng.choice(len(rois), FEAT_SAMPLE_ROIS, replace=False))
        feat_channels = np.sort(rng.choice(roi_feat.shape[1], 32, replace=False))
        box_rois = np.sort(rng.choice(len(rois), BOX_SAMPLE_ROIS, replace=False))

        labels = bbox[:, 0].astype(np.int64)
        mask_prob = mask[np.arange(len(mask)), labels] if len(bbox) else np.zeros((0, 28, 28))
        segms = mask2out([{'bbox': (bbox, [[len(bbox)]]), 'mask': (mask, [[len(bbox)]]),
                           'im_id': (np.array([[0]]), [[1]]),
                           'im_shape': (im_shape, [[1]])}],
                         {i: i for i in range(81)}, resolution=28)
        import pycocotools.mask as mask_util
        pasted = np.stack([mask_util.decode(s['segmentation']) for s in segms]) \
            if segms else np.zeros((0,) + IMAGE_HW, np.uint8)

        out = {
            'im_info': im_info[0], 'im_shape': im_shape[0],
            'rois': rois, 'level_of_roi': level_of_roi,
            'feat_rois': feat_rois, 'feat_channels': feat_channels,
            'roi_feat': roi_feat[feat_rois][:, feat_channels],
            'box_rois': box_rois, 'cls_prob': cls_prob[box_rois],
            'decoded': decoded[box_rois], 'clipped': clipped[box_rois],
            'bbox': bbox, 'mask_prob': mask_prob.astype(np.float16),
            'pasted': np.packbits(pasted.astype(bool), axis=-1), 'pasted_width': IMAGE_HW[1],
        }
        for lvl in range(5):
            out['level_rois_%d' % (lvl + 2)] = gp_rois[lvl]
            out['level_probs_%d' % (lvl + 2)] = gp_probs[lvl]
            # anchors do not depend on the row; the large size keeps the coarse levels only
            if row == 'add' and (size_name == MODEL_SIZES[0] or lvl >= 2):
                out['anchors_%d' % (lvl + 2)] = anchors[lvl]
            # RPN outputs, to test proposal generation on the legacy inputs (small size only)
            if size_name == MODEL_SIZES[0]:
                out['rpn_prob_%d' % (lvl + 2)] = gp_scores[lvl]
                out['rpn_delta_%d' % (lvl + 2)] = gp_deltas[lvl]
        path = os.path.join(out_dir, '%s_%s.npz' % (row, size_name))
        np.savez_compressed(path, **out)
        print('%s %s: input %s, %d rois, %d detections (scores %.3f..%.3f), %d classes; %s %d B'
              % (row, size_name, image.shape[2:], len(rois), len(bbox),
                 bbox[:, 1].min() if len(bbox) else 0, bbox[:, 1].max() if len(bbox) else 0,
                 len(set(labels.tolist())), path, os.path.getsize(path)))
    return shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--static', required=True, help='the legacy static/ folder')
    parser.add_argument('--out', required=True)
    parser.add_argument('--weights-dir', default=None)
    parser.add_argument('--rows', default='add,mul')
    args = parser.parse_args()
    static_dir = os.path.abspath(args.static)
    sys.path.insert(0, static_dir)
    os.makedirs(args.out, exist_ok=True)
    image_path = os.path.join(args.out, 'image.png')
    if not os.path.exists(image_path):
        make_image(image_path)
    for size_name, (target_size, max_size) in SIZES.items():
        sample, resized_hw, im_info_resize = legacy_reader(image_path, target_size, max_size)
        image = sample['image'].astype(np.float32)
        if size_name not in FULL_IMAGE_SIZES:
            image = image[:, ::7, ::7]
        np.savez_compressed(os.path.join(args.out, 'reader_%s.npz' % size_name), image=image,
                            im_info=np.array(sample['im_info'], np.float32),
                            im_info_resize=im_info_resize, resized_hw=np.array(resized_hw),
                            padded_hw=np.array(sample['image'].shape[1:]))
    all_shapes = {}
    for row in args.rows.split(','):
        all_shapes[row] = run_row(row, static_dir, image_path, args.out, args.weights_dir)
    meta = {'sizes': {k: list(v) for k, v in SIZES.items()}, 'image_hw': list(IMAGE_HW),
            'weights': all_shapes}
    with open(os.path.join(args.out, 'legacy_meta.json'), 'w') as f:
        json.dump(meta, f, indent=0, sort_keys=True)


if __name__ == '__main__':
    main()

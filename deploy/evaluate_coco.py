"""COCO box and mask AP of an exported model as deploy runs it (preprocess, predictor, paste).

    python deploy/evaluate_coco.py --model_dir EXPORT --anno_file dataset/shapes/annotations/instances_val.json \
        --image_dir dataset/shapes/val --enable_mkldnn [--enable_mkldnn_bfloat16] [--output FILE]
    python deploy/evaluate_coco.py ... --backend openvino --run_mode int8   # an --onnx export

Used to measure what a precision or backend change costs in accuracy: the same export evaluated
with oneDNN fp32 and bf16 on the same images, or its ONNX model and its int8 model
(deploy/python/quantize.py) with OpenVINO. Every detection is kept (threshold 0), class ids map
to the annotation file's category ids in sorted order (ppdet's convention).
"""
import argparse
import json
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def coco_results(detections, image_id, category_ids):
    """One image's deploy detections -> COCO result records (xywh boxes, RLE masks)."""
    records = []
    for det in detections:
        x1, y1, x2, y2 = det['bbox_xyxy']
        if not 0 <= det['class_id'] < len(category_ids):
            continue  # the placeholder row of an image without detections
        record = {'image_id': image_id, 'category_id': category_ids[det['class_id']],
                  'score': det['score'], 'bbox': [x1, y1, x2 - x1, y2 - y1]}
        if 'segmentation' in det:
            record['segmentation'] = det['segmentation']
        records.append(record)
    return records


def evaluate(coco, results, iou_type):
    """AP and AP50 (IoU 0.5:0.95 and 0.5) of `results` on `coco`; 0 when there are none."""
    from pycocotools.cocoeval import COCOeval
    if not results:
        return {'ap': 0.0, 'ap50': 0.0}
    evaluator = COCOeval(coco, coco.loadRes(results), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return {'ap': round(float(evaluator.stats[0]), 4), 'ap50': round(float(evaluator.stats[1]), 4)}


def main(argv=None):
    from deploy.python.errors import DeployError
    from deploy.python.image_io import read_image_rgb
    from deploy.python.infer import Detector
    from deploy.python.model_files import load_model_files
    from deploy.python.predictor import PredictorOptions
    from deploy.python.results import to_json_records
    from pycocotools.coco import COCO

    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model_dir', required=True)
    p.add_argument('--anno_file', required=True)
    p.add_argument('--image_dir', required=True)
    p.add_argument('--backend', default='paddle', help='paddle, onnxruntime or openvino')
    p.add_argument('--run_mode', default='paddle', help='paddle, or int8 (ONNX backends)')
    p.add_argument('--enable_mkldnn', action='store_true')
    p.add_argument('--enable_mkldnn_bfloat16', action='store_true')
    p.add_argument('--cpu_threads', type=int, default=2)
    p.add_argument('--winograd', choices=('on', 'off'), default='on',
                   help='fp32 ONNX backends: 3x3 convolutions in Winograd form (as infer.py by '
                   'default) or direct')
    p.add_argument('--output', help='write the figures as JSON here')
    args = p.parse_args(argv)
    for path, what in ((args.anno_file, 'file'), (args.image_dir, 'directory')):
        if not (os.path.isfile(path) if what == 'file' else os.path.isdir(path)):
            p.error(f"{path!r}: no such {what}")
    try:
        model = load_model_files(args.model_dir, args.backend)
        detector = Detector(model, PredictorOptions(
            backend=args.backend, run_mode=args.run_mode,
            cpu_threads=args.cpu_threads, enable_mkldnn=args.enable_mkldnn,
            enable_mkldnn_bfloat16=args.enable_mkldnn_bfloat16,
            winograd=args.winograd == 'on'))
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    coco = COCO(args.anno_file)
    category_ids = sorted(coco.getCatIds())
    results = []
    images = coco.loadImgs(coco.getImgIds())
    for index, info in enumerate(images):
        image = read_image_rgb(os.path.join(args.image_dir, info['file_name']))
        (dets,) = detector.predict([image], 0.0)
        results += coco_results(to_json_records(dets, model.label_list), info['id'],
                                category_ids)
        print(f"\r[evaluate] {index + 1}/{len(images)} images", end='', file=sys.stderr)
    print(file=sys.stderr)
    report = {'model_dir': args.model_dir, 'images': len(images),
              'backend': args.backend,
              'precision': ('int8' if args.run_mode == 'int8' else
                            'bf16' if args.enable_mkldnn_bfloat16 else 'fp32'),
              'onednn': args.enable_mkldnn, 'winograd': args.winograd == 'on',
              'bbox': evaluate(coco, results, 'bbox'),
              'segm': evaluate(coco, [r for r in results if 'segmentation' in r], 'segm')}
    print(json.dumps(report))
    if args.output:
        with open(args.output + '.tmp', 'w') as f:
            json.dump(report, f, indent=2)
        os.replace(args.output + '.tmp', args.output)
    return 0


if __name__ == '__main__':
    sys.exit(main())

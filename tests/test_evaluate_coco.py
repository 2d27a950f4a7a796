"""deploy/evaluate_coco.py: ground truth scored as detections gives AP 1, and the tool runs an
export end to end (its JSON read back)."""
import json
import os

from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from deploy import evaluate_coco
from tests.test_deploy_fixtures import deploy_model, dygraph_model, shapes_image  # noqa: F401


def test_ground_truth_as_detections_scores_ap_one(shapes_dataset):
    coco = COCO(os.path.join(shapes_dataset, 'annotations', 'instances_val.json'))
    category_ids = sorted(coco.getCatIds())
    results = []
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        detections = []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            x, y, w, h = ann['bbox']
            rle = mask_util.encode(coco.annToMask(ann)[:, :, None].copy(order='F'))[0]
            detections.append({'class_id': category_ids.index(ann['category_id']), 'score': 0.9,
                               'bbox_xyxy': [x, y, x + w, y + h],
                               'segmentation': {'size': rle['size'],
                                                'counts': rle['counts'].decode('ascii')}})
        # the placeholder row deploy emits for an image without detections is dropped
        detections.append({'class_id': -1, 'score': 0.0, 'bbox_xyxy': [0, 0, 1, 1]})
        results += evaluate_coco.coco_results(detections, info['id'], category_ids)
    assert all(r['category_id'] in category_ids for r in results)
    assert evaluate_coco.evaluate(coco, results, 'bbox')['ap'] > 0.99
    assert evaluate_coco.evaluate(coco, results, 'segm')['ap'] > 0.99
    assert evaluate_coco.evaluate(coco, [], 'bbox') == {'ap': 0.0, 'ap50': 0.0}


def test_evaluates_an_export(deploy_model, shapes_dataset, tmp_path):
    out = tmp_path / 'ap.json'
    rc = evaluate_coco.main([
        '--model_dir', deploy_model[2], '--anno_file',
        os.path.join(shapes_dataset, 'annotations', 'instances_val.json'), '--image_dir',
        os.path.join(shapes_dataset, 'val'), '--enable_mkldnn', '--cpu_threads', '1',
        '--output', str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report['images'] == 2 and report['precision'] == 'fp32'
    for kind in ('bbox', 'segm'):
        assert 0.0 <= report[kind]['ap'] <= report[kind]['ap50'] <= 1.0


def test_bad_model_dir_is_one_line(tmp_path, shapes_dataset, capsys):
    rc = evaluate_coco.main(['--model_dir', str(tmp_path), '--anno_file',
                             os.path.join(shapes_dataset, 'annotations', 'instances_val.json'),
                             '--image_dir', str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error:') and '\n' not in err

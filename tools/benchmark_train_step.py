"""Training-step time of the GC configs relative to the no-GC control, measured in one run.

    python tools/benchmark_train_step.py --size 512 --repeats 5

Builds every config's Mask R-CNN, gives all of them the control's weights for the parts they
share (GC blocks start from their own initialisation, so `add` starts as the identity and the
detector workload is the same), then times forward + backward + optimizer step on the same
synthetic batch, interleaving the models round by round so drift in machine load hits all of
them alike. Prints medians and ratios to the control, as a table and as JSON.
"""
import argparse
import json
import statistics
import time

import _path  # noqa: F401

CONFIGS = {
    'control': 'configs/gcnet/mask_rcnn_r50_vd_fpn_2x_coco.yml',
    'gc_add': 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml',
    'gc_mul': 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_mul_r16_2x_coco.yml',
}


def synthetic_batch(size, seed=0):
    """One image with three boxes and polygon masks, in the layout ppdet's reader produces."""
    import numpy as np
    import paddle
    rng = np.random.RandomState(seed)
    boxes = np.array([[40, 60, 200, 220], [250, 100, 400, 300], [100, 300, 300, 480]],
                     'float32') * size / 512
    polys = [[[b[0], b[1], b[2], b[1], b[2], b[3], b[0], b[3]]] for b in boxes.tolist()]
    return {
        'image': paddle.to_tensor(rng.normal(size=(1, 3, size, size)).astype('float32')),
        'im_shape': paddle.to_tensor([[size, size]], dtype='float32'),
        'scale_factor': paddle.to_tensor([[1.0, 1.0]], dtype='float32'),
        'im_id': paddle.to_tensor([[0]]),
        'gt_bbox': [paddle.to_tensor(boxes)],
        'gt_class': [paddle.to_tensor([[1], [2], [3]], dtype='int32')],
        'is_crowd': [paddle.to_tensor([[0], [0], [0]], dtype='int32')],
        'gt_poly': [polys],
        'curr_iter': paddle.to_tensor([0]),
        'epoch_id': 0,
    }


def build(config_path):
    import paddle
    from ppdet.core.workspace import create, load_config
    cfg = load_config(config_path)
    model = create(cfg.architecture)
    model.train()
    optimizer = paddle.optimizer.Momentum(learning_rate=1e-5, momentum=0.9,
                                          parameters=model.parameters())
    return model, optimizer


def step(model, optimizer, batch):
    import copy
    loss = model(copy.copy(batch))['loss']
    loss.backward()
    optimizer.step()
    optimizer.clear_grad()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=512, help='square input size (pixels)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds per model')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds per model')
    parser.add_argument('--json', default=None, help='also write the results here')
    args = parser.parse_args(argv)

    import paddle
    import ppdet_gcnet  # noqa: F401
    paddle.set_device('cpu')
    paddle.seed(0)
    models = {}
    for name, path in CONFIGS.items():
        models[name] = build(path)
    shared = models['control'][0].state_dict()
    for name in ('gc_add', 'gc_mul'):
        models[name][0].set_dict({**models[name][0].state_dict(), **shared})
    batch = synthetic_batch(args.size)

    times = {name: [] for name in models}
    for round_index in range(args.warmup + args.repeats):
        for name, (model, optimizer) in models.items():
            paddle.seed(round_index)  # same RoI sampling for every model in a round
            start = time.perf_counter()
            step(model, optimizer, batch)
            if round_index >= args.warmup:
                times[name].append(time.perf_counter() - start)

    control = statistics.median(times['control'])
    results = {name: {'median_s': statistics.median(t), 'min_s': min(t),
                      'ratio_to_control': statistics.median(t) / control}
               for name, t in times.items()}
    print(f"training step, Mask R-CNN R50-vd-FPN, 1 image {args.size}x{args.size}, "
          f"{args.repeats} rounds (median of each), paddle {paddle.__version__} on CPU")
    print(f"{'config':<10}{'median s':>10}{'min s':>10}{'x control':>11}")
    for name, r in results.items():
        print(f"{name:<10}{r['median_s']:>10.3f}{r['min_s']:>10.3f}{r['ratio_to_control']:>11.3f}")
    print(json.dumps(results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'size': args.size, 'repeats': args.repeats, 'results': results}, f,
                      indent=1)


if __name__ == '__main__':
    main()

"""The legacy-evaluation overrides reach the model through ppdet's own `-o` parsing."""
import copy
import os

from ppdet_gcnet.weights.legacy_pipeline import legacy_eval_config, legacy_eval_opts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml')


def test_overrides_parse_and_build_the_legacy_settings():
    import ppdet_gcnet  # noqa: F401
    from ppdet.core.workspace import create, load_config, merge_config
    from ppdet.utils.cli import ArgsParser
    cfg = load_config(CONFIG)
    args = ArgsParser().parse_args(['-c', CONFIG, '-o'] + legacy_eval_opts())
    assert args.opt == legacy_eval_config()
    # ppdet's config is process-global: put back what the overrides touch for later tests
    saved = {top: {k: copy.deepcopy(cfg[top][k]) for k in sub}
             for top, sub in args.opt.items() if isinstance(sub, dict)}
    merge_config(args.opt)
    try:
        model = create(cfg['architecture'])
    finally:
        for top in args.opt:
            if top in saved:
                cfg[top].update(saved[top])
            else:
                cfg.pop(top, None)
        assert cfg['RPNHead']['anchor_generator'].get('offset', 0.0) == 0.0
    assert model.rpn_head.anchor_generator.offset == 0.5
    for extractor, resolution in ((model.bbox_head.roi_extractor, 7),
                                  (model.mask_head.roi_extractor, 14)):
        assert extractor.aligned is False and extractor.sampling_ratio == 2
        assert extractor.resolution == resolution
    assert model.bbox_post_process.nms.normalized is False
    assert model.bbox_post_process.nms.keep_top_k == 100       # untouched neighbours survive
    assert args.opt['bias'] is True

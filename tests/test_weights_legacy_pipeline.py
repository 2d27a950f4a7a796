"""The legacy configs choose the legacy components (and only they: the dygraph configs keep
ppdet's), and every legacy manifest entry points at a legacy config."""
import os

import pytest

from ppdet_gcnet.weights.legacy_pipeline import LEGACY_COMPONENTS, eval_command, legacy_configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def built_components(config):
    import ppdet_gcnet  # noqa: F401
    from ppdet.core.workspace import create, load_config
    cfg = load_config(os.path.join(ROOT, config))
    model = create(cfg['architecture'])
    return model, cfg


@pytest.mark.parametrize('name', sorted(legacy_configs()))
def test_legacy_config_builds_the_legacy_components(name):
    config = legacy_configs()[name]
    assert config.startswith('configs/gcnet/legacy/')
    assert eval_command(name).endswith(f'-c {config} -o weights={name}')
    model, cfg = built_components(config)
    for attr, cls in LEGACY_COMPONENTS.items():
        assert type(getattr(model, attr)).__name__ == cls
    rpn = model.rpn_head
    assert type(rpn.anchor_generator).__name__ == 'LegacyAnchorGenerator'
    assert type(rpn.test_proposal).__name__ == 'LegacyProposalGenerator'
    for head, resolution in ((model.bbox_head, 7), (model.mask_head, 14)):
        extractor = head.roi_extractor
        assert type(extractor).__name__ == 'LegacyRoIAlign'
        assert (extractor.resolution, extractor.sampling_ratio, extractor.aligned) == \
            (resolution, 2, False)
    assert type(model.bbox_post_process.decode).__name__ == 'LegacyRCNNBox'
    assert model.bbox_post_process.nms.normalized is False
    assert cfg['bias'] is True
    names = [list(t)[0] for t in cfg['EvalReader']['sample_transforms']]
    assert names == ['Decode', 'LegacyNormalizeImage', 'LegacyResize', 'Permute']


DYGRAPH_TYPES = r"""
import json, sys
import ppdet_gcnet
from ppdet.core.workspace import create, load_config
cfg = load_config(sys.argv[1])
model = create(cfg.architecture)
print(json.dumps({'components': {k: type(getattr(model, k)).__name__ for k in sys.argv[2:]},
                  'anchors': type(model.rpn_head.anchor_generator).__name__,
                  'bias': bool(cfg.get('bias', False))}))
"""


def test_dygraph_config_keeps_ppdet_components():
    """In a fresh process: ppdet's global config would otherwise keep the legacy keys."""
    import json
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, '-c', DYGRAPH_TYPES,
         'configs/gcnet/mask_rcnn_r50_vd_fpn_gcb_add_r16_2x_coco.yml', *LEGACY_COMPONENTS],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    built = json.loads(out.stdout.strip().splitlines()[-1])
    assert built['components'] == {k: v.replace('Legacy', '') for k, v in LEGACY_COMPONENTS.items()}
    assert built['anchors'] == 'AnchorGenerator' and built['bias'] is False

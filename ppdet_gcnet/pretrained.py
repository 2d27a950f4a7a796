"""Loading pretrained weights into a model, saying which parameters they did not contain.

ppdet's own `load_pretrain_weight` logs weights the model did not use, but not model parameters
the file did not fill; for a GC backbone started from ImageNet ResNet weights those are exactly
the GC blocks, and a user should see that they start from their initialisation.
"""
import os
from collections import OrderedDict

import numpy as np
import paddle
from ppdet.utils.checkpoint import match_state_dict
from ppdet.utils.logger import setup_logger

from .weights.state_file import read_state_dict

logger = setup_logger(__name__)


def _owner(name):
    """`backbone.res3.res3a.gc_block.conv_mask.weight` -> `backbone.res3.res3a.gc_block`."""
    if '.gc_block.' in name:
        return name.split('.gc_block.')[0] + '.gc_block'
    return name.split('.')[0]


def summarize_missing(names):
    """Group parameter names by GC block or by top-level module, keeping order."""
    groups = OrderedDict()
    for name in names:
        groups.setdefault(_owner(name), []).append(name)
    return groups


def load_pretrained_weights(model, weights):
    """Load `weights` (path with or without `.pdparams`) by ppdet's name matching; log and
    return the names of model parameters the file did not provide."""
    path = str(weights)
    if path.endswith('.pdparams'):
        path = path[:-len('.pdparams')]
    if not os.path.isfile(path + '.pdparams'):
        raise FileNotFoundError(f"pretrain_weights: {path}.pdparams: no such file")
    model_state = model.state_dict()
    matched = match_state_dict(model_state, read_state_dict(path, 'pretrain_weights'))
    for key, value in matched.items():
        if isinstance(value, np.ndarray):
            value = paddle.to_tensor(value)
        matched[key] = value.astype(model_state[key].dtype)
    # Hand set_dict every key (unmatched ones keep their current value) so Paddle does not
    # warn once per GC parameter; the summary below says it once.
    model.set_dict({**model_state, **matched})
    missing = [k for k in model_state if k not in matched]
    groups = summarize_missing(missing)
    gc_groups = [g for g in groups if g.endswith('.gc_block')]
    if gc_groups:
        count = sum(len(groups[g]) for g in gc_groups)
        logger.info(f"Pretrained weights {path}.pdparams have no GC blocks: {len(gc_groups)} "
                    f"blocks ({count} parameters) keep their initialisation: "
                    f"{', '.join(gc_groups)}")
    others = [g for g in groups if not g.endswith('.gc_block')]
    if others:
        logger.info(f"Not in {path}.pdparams, kept at initialisation: "
                    + ', '.join(f"{g} ({len(groups[g])} parameters)" for g in others))
    logger.info(f"Loaded {len(matched)} of {len(model_state)} parameters from {path}.pdparams")
    return missing

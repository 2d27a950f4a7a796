"""Per-block numbers for one image: how peaked the attention is and how much the fusion matters.

  * entropy_ratio: entropy of the attention map / log(H*W). 1.0 = uniform (the 'avg' pooling
    case), near 0 = all mass on one position.
  * top1pct_share: share of attention mass on the top 1 % of positions (at least one position).
    Uniform gives 1 % (exactly k / (H*W)).
  * fusion magnitude, per fusion type present:
      add: mean |t_add| / mean |x'|, x' the features t_add is added to (x, or x * sigmoid(t_mul)
           when the block multiplies first);
      mul: mean |sigmoid(t_mul) - 0.5| (0 = the block scales every channel by exactly 0.5,
           i.e. carries no image-dependent signal; 0.5 is the maximum).
    A transform that stayed near its zero initialisation shows as ~0 here.
"""
import math

import numpy as np

TOP_FRACTION = 0.01
UNIFORM_NOTE = 'uniform by construction (avg pooling): every position weighs 1/(H*W)'


def entropy_ratio(attention):
    """Entropy of a map that sums to 1, relative to the uniform map over the same positions."""
    p = np.asarray(attention, np.float64).ravel()
    if p.size <= 1:
        return 1.0
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / math.log(p.size))


def top_positions(num_positions, fraction=TOP_FRACTION):
    """How many positions make up the top `fraction` (never fewer than one)."""
    return max(1, int(math.ceil(fraction * num_positions - 1e-9)))


def top_share(attention, fraction=TOP_FRACTION):
    """Share of the mass held by the top `fraction` of positions."""
    p = np.asarray(attention, np.float64).ravel()
    k = top_positions(p.size, fraction)
    return float(np.sort(p)[::-1][:k].sum())


def add_magnitude(add_term, base_abs_mean):
    """mean |t_add| / mean |x'|; inf when the features are all zero but t is not."""
    t = float(np.abs(np.asarray(add_term, np.float64)).mean())
    if base_abs_mean == 0:
        return 0.0 if t == 0 else math.inf
    return t / float(base_abs_mean)


def mul_magnitude(mul_term):
    """mean |sigmoid(t_mul) - 0.5|."""
    t = np.asarray(mul_term, np.float64)
    return float(np.abs(1.0 / (1.0 + np.exp(-t)) - 0.5).mean())


def block_report(record, index=0):
    """JSON-ready dict of the numbers above for image `index` of a `BlockRecord`."""
    height, width = record.feature_hw
    num_positions = height * width
    entry = {
        'name': record.name,
        'block': record.short_name,
        'stage': record.stage_name,
        'pooling_type': record.pooling_type,
        'fusion_types': list(record.fusion_types),
        'feature_hw': [int(height), int(width)],
        'top_positions': top_positions(num_positions),
    }
    if record.attention is None:
        entry['attention'] = UNIFORM_NOTE
        entry['entropy_ratio'] = 1.0
        entry['top1pct_share'] = top_positions(num_positions) / num_positions
    else:
        entry['entropy_ratio'] = entropy_ratio(record.attention[index])
        entry['top1pct_share'] = top_share(record.attention[index])
    entry['input_abs_mean'] = float(record.input_abs_mean[index])
    if record.add_term is not None:
        ratio = add_magnitude(record.add_term[index], record.add_base_abs_mean[index])
        # JSON has no infinity: all-zero features under a non-zero term are reported as null.
        entry['add_magnitude'] = ratio if math.isfinite(ratio) else None
    if record.mul_term is not None:
        entry['mul_magnitude'] = mul_magnitude(record.mul_term[index])
    return entry


def image_report(records, image_path, index=0):
    """Report of every captured block for image `index` of the batch."""
    return {
        'image': image_path,
        'definitions': {
            'entropy_ratio': 'attention entropy / log(H*W); 1.0 = uniform',
            'top1pct_share': 'attention mass on the top 1 % of positions (>= 1 position)',
            'add_magnitude': "mean |t_add| / mean |x'| (x' = features t_add is added to)",
            'mul_magnitude': 'mean |sigmoid(t_mul) - 0.5|',
        },
        'blocks': [block_report(record, index) for record in records],
    }

"""Replacing one attribute of an installed ppdet object, recorded so that it happens once.

Every replacement carries the name of the fix that made it (`__ppdet_gcnet_fix__`) and the
attribute it replaced (`__wrapped_original__`), so `apply()` can tell "already done" from
"not done" without any module-level state, and tests can reach the original.
"""
FIX_MARK = '__ppdet_gcnet_fix__'


def is_replaced(owner, name, fix_name):
    """True if `fix_name` replaced `owner.name`, even if a later fix replaced it in turn."""
    current = getattr(owner, name, None)
    while current is not None:
        if getattr(current, FIX_MARK, None) == fix_name:
            return True
        current = getattr(current, '__wrapped_original__', None)
    return False


def replace(owner, name, replacement, fix_name):
    """Set `owner.name = replacement` unless this fix did so already; True if it changed."""
    if is_replaced(owner, name, fix_name):
        return False
    replacement.__wrapped_original__ = getattr(owner, name)
    setattr(replacement, FIX_MARK, fix_name)
    setattr(owner, name, replacement)
    return True


def original(replacement):
    """What `replacement` replaced: the function it hands the cases it does not handle to.
    (Fixes can stack: a later fix may replace an earlier fix's replacement.)"""
    return replacement.__wrapped_original__


def installed(owner, name):
    """The attribute as the installed ppdet defines it, under any replacements made here."""
    current = getattr(owner, name)
    while hasattr(current, '__wrapped_original__'):
        current = current.__wrapped_original__
    return current


def leading_count(tensor):
    """`tensor.shape[0]` as a 1-D int32 tensor of one element.

    Since Paddle 2.5 (Paddle PR #52814) indexing with an integer gives a 0-D tensor, which
    `paddle.concat` refuses; ppdet 2.6 concatenates such counts into its per-image `rois_num`
    tensors. Slicing keeps one dimension, and int32 is the dtype ppdet's RoI ops were written
    against (`paddle.shape` itself now returns int64).
    """
    import paddle
    return paddle.shape(tensor)[0:1].astype('int32')

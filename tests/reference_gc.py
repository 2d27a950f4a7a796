"""Independent NumPy implementation of the GC block forward, from the paper's equations."""
import numpy as np


def _conv1x1(x, weight, bias):
    """x [N, Cin, 1, 1] (or [N, Cin, H, W]), weight [Cout, Cin, 1, 1]."""
    return np.einsum('nchw,oc->nohw', x, weight[:, :, 0, 0]) + bias[None, :, None, None]


def _layer_norm(x, gamma, beta, eps=1e-5):
    """Normalise over [C, 1, 1] per sample; gamma/beta flat [C]."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma[None, :, None, None] + beta[None, :, None, None]


def _transform(context, p):
    t = _conv1x1(context, p['0.weight'], p['0.bias'])
    t = np.maximum(_layer_norm(t, p['1.weight'], p['1.bias']), 0)
    return _conv1x1(t, p['3.weight'], p['3.bias'])


def gc_block_forward(x, params, pooling_type, fusion_types):
    """x [N, C, H, W]; params: name -> array as in GlobalContextBlock.state_dict()."""
    n, c, h, w = x.shape
    x = x.astype(np.float64)
    if pooling_type == 'att':
        logits = _conv1x1(x, params['conv_mask.weight'], params['conv_mask.bias']).reshape(n, h * w)
        logits = logits - logits.max(1, keepdims=True)
        attention = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        context = np.einsum('ncp,np->nc', x.reshape(n, c, h * w), attention)[:, :, None, None]
    else:
        context = x.mean(axis=(2, 3), keepdims=True)
    out = x
    if 'channel_mul' in fusion_types:
        sub = {k[len('channel_mul_conv.'):]: v for k, v in params.items()
               if k.startswith('channel_mul_conv.')}
        out = out * (1 / (1 + np.exp(-_transform(context, sub))))
    if 'channel_add' in fusion_types:
        sub = {k[len('channel_add_conv.'):]: v for k, v in params.items()
               if k.startswith('channel_add_conv.')}
        out = out + _transform(context, sub)
    return out

"""The parameter set (names, shapes, dtypes) of a config's model, built in a child process.

ppdet's config is process-global: `load_config` merges a file into it and would overwrite a
running tool's `-o` overrides (e.g. the legacy-evaluation switches) when weights are converted
on first use inside `tools/eval.py`. Building the model in a child process leaves the caller's
config untouched. Run as `python -m ppdet_gcnet.weights.model_params CONFIG` it prints JSON.
"""
import json
import os
import subprocess
import sys

_MARKER = 'MODEL_PARAMS_JSON '
_REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


class ModelParamsError(ValueError):
    pass


def _describe(config_path):
    import paddle
    import ppdet_gcnet  # noqa: F401  (registers GCResNet)
    from ppdet.core.workspace import create, load_config

    from .convert import arch_from_config
    paddle.set_device('cpu')
    cfg = load_config(config_path)
    model = create(cfg['architecture'])
    params = {name: [list(t.shape), str(t.dtype).replace('paddle.', '')]
              for name, t in model.state_dict().items()}
    arch = arch_from_config(cfg)
    return {'params': params, 'arch': {k: getattr(arch, k) for k in arch.__dataclass_fields__}}


def describe_model(config_path, timeout=600):
    """Config -> {'params': {name: [shape, dtype]}, 'arch': LegacyArch fields}."""
    config_path = os.path.abspath(config_path)
    if not os.path.isfile(config_path):
        raise ModelParamsError(f"{config_path}: no such config")
    env = dict(os.environ)
    env['PYTHONPATH'] = _REPO_ROOT + (os.pathsep + env['PYTHONPATH']
                                      if env.get('PYTHONPATH') else '')
    proc = subprocess.run([sys.executable, '-m', 'ppdet_gcnet.weights.model_params', config_path],
                          capture_output=True, text=True, timeout=timeout, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARKER):
            return json.loads(line[len(_MARKER):])
    last = (proc.stderr.strip().splitlines() or ['no output'])[-1]
    raise ModelParamsError(f"{config_path}: building the model failed ({last})")


if __name__ == '__main__':
    print(_MARKER + json.dumps(_describe(sys.argv[1])))

"""Build a ppdet model from a config inside the test process without leaking the config into
other tests: ppdet's config is process-global, so the registry is reset to bare schemas before
loading and the previous state is put back afterwards."""
import contextlib
import copy


@contextlib.contextmanager
def isolated_config():
    from ppdet.core import workspace
    from ppdet.core.config.schema import SchemaDict
    previous = dict(workspace.global_config)
    bare = {}
    for key, value in previous.items():
        if isinstance(value, SchemaDict):
            schema = copy.copy(value)
            dict.clear(schema)
            bare[key] = schema
    workspace.global_config.clear()
    workspace.global_config.update(bare)
    try:
        yield workspace.global_config
    finally:
        workspace.global_config.clear()
        workspace.global_config.update(previous)


def build_model(config_path, overrides=None):
    """(model in eval mode, loaded config as a plain dict snapshot)."""
    import paddle
    import ppdet_gcnet  # noqa: F401
    from ppdet.core.workspace import create, load_config, merge_config
    paddle.set_device('cpu')
    with isolated_config():
        cfg = load_config(config_path)
        if overrides:
            merge_config(overrides)
        model = create(cfg.architecture)
        snapshot = {k: cfg[k] for k in list(cfg.keys())}
    model.eval()
    return model, snapshot

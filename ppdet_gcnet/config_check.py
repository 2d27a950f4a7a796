"""Config-time validation of GC settings: runs right after a config is loaded, so a typo fails
in a second with a one-line error instead of after the dataset has been read."""
from .modeling import GCConfigError, GCResNet


def _section_args(cfg, name):
    """The registered module's constructor arguments as the config gives them."""
    section = cfg[name]  # a SchemaDict: registration gave it the constructor's schema
    unknown = sorted(k for k in section if k not in section.schema)
    if unknown:
        raise GCConfigError(f"{name}.{unknown[0]}: unknown key; {name} takes: "
                            f"{', '.join(sorted(section.schema))}")
    # SchemaDict answers missing keys with the constructor's default.
    return {key: section[key] for key in section.schema}


def check_config(cfg):
    """Raise GCConfigError for a bad `GCResNet` section of ppdet's global config `cfg`."""
    if 'GCResNet' in cfg:
        GCResNet.check_args(**_section_args(cfg, 'GCResNet'))

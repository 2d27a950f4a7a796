"""Find and check the files of an exported model directory before Paddle sees them.

An export (`tools/export_model.py`) writes `model.json` (PIR program; older Paddle: `model.pdmodel`),
`model.pdiparams` (weights), `infer_cfg.yml` (preprocessing, labels) and, with --onnx,
`model.onnx` (the ONNX backends read only that and infer_cfg.yml). Every problem is reported
as one DeployError naming the file, instead of a C++ traceback from the predictor.
"""
import os
from dataclasses import dataclass, field
from typing import Optional

import yaml

from .errors import DeployError

PROGRAM_FILES = ('model.json', 'model.pdmodel')


@dataclass
class ModelFiles:
    model_dir: str
    program: Optional[str]
    params: Optional[str]
    infer_cfg: dict = field(repr=False)

    @property
    def label_list(self):
        return list(self.infer_cfg.get('label_list') or [])

    @property
    def preprocess(self):
        return self.infer_cfg['Preprocess']

    @property
    def raw_masks(self):
        """True when the graph outputs mask probabilities for deploy to paste."""
        return self.infer_cfg.get('mask_output') == 'raw'

    @property
    def legacy_pipeline(self):
        """True for exports of the legacy-exact pipeline (`pipeline: legacy`): boxes decoded in
        original pixels with +1 pixel widths (the true scale factor is always fed) and raw
        masks pasted the legacy way (deploy/python/legacy.py)."""
        return self.infer_cfg.get('pipeline') == 'legacy'

    @property
    def mask_threshold(self):
        """Probability at which deploy cuts raw masks (`mask_threshold`, written by the export
        from the config's MaskPostProcess.binary_thresh; 0.5 when absent)."""
        value = self.infer_cfg.get('mask_threshold', 0.5)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise DeployError(f"{os.path.join(self.model_dir, 'infer_cfg.yml')}: mask_threshold "
                              f"{value!r} must be a number between 0 and 1")
        return float(value)

    @property
    def max_batch_size(self):
        """Images per run the exported graph takes (None: any number)."""
        value = self.infer_cfg.get('max_batch_size')
        return int(value) if value else None

    @property
    def draw_threshold(self):
        return float(self.infer_cfg.get('draw_threshold', 0.5))


def _non_empty(path, what):
    if not os.path.isfile(path):
        raise DeployError(f"{path}: missing ({what})")
    if os.path.getsize(path) == 0:
        raise DeployError(f"{path}: file is empty ({what})")
    return path


def load_model_files(model_dir, backend='paddle'):
    """The export's files; the Paddle program and weights are required for `backend` paddle
    (the ONNX backends check `model.onnx` themselves)."""
    if not model_dir or not os.path.isdir(model_dir):
        raise DeployError(f"--model_dir {model_dir!r}: no such directory")
    programs = [os.path.join(model_dir, n) for n in PROGRAM_FILES
                if os.path.isfile(os.path.join(model_dir, n))]
    program = params = None
    if backend == 'paddle':
        if not programs:
            raise DeployError(f"{model_dir}: no exported program ({' or '.join(PROGRAM_FILES)});"
                              " export one with tools/export_model.py")
        program = _non_empty(programs[0], 'exported program')
        params = _non_empty(os.path.join(model_dir, 'model.pdiparams'), 'exported weights')
    cfg_path = _non_empty(os.path.join(model_dir, 'infer_cfg.yml'), 'preprocessing and labels')
    try:
        with open(cfg_path) as f:
            infer_cfg = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise DeployError(f"{cfg_path}: not valid YAML ({str(e).splitlines()[0]})")
    if not isinstance(infer_cfg, dict) or not isinstance(infer_cfg.get('Preprocess'), list):
        raise DeployError(f"{cfg_path}: no 'Preprocess' list; is it an export's infer_cfg.yml?")
    model = ModelFiles(model_dir, program, params, infer_cfg)
    model.mask_threshold  # a bad value is refused now, not after the first image
    return model

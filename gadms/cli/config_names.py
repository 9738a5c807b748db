"""Earlier names of the configs (renamed to mmpretrain's pattern
``{method}_{backbone}_{gpus}xb{batch}_{data}``), which the tools accept
until gadms 0.3: :func:`resolve_config_path` maps one to its new name with
a note. Listed in docs/configs.md."""
import os.path as osp
import warnings
from typing import Dict

_ABLATIONS = 'configs/gadms/ablations/'
# earlier path (relative to the repository) -> path now
RENAMED_CONFIGS: Dict[str, str] = {
    'configs/baselines/clip-sdm_tiny_synthperson.py':
    'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py',
    'configs/baselines/clip-sdm_tiny_synthperson-noise40.py':
    'configs/baselines/clip-sdm_tiny_1xb64_synthperson-noise40.py',
    'configs/baselines/clip-sdm_vitb16_cuhk-pedes.py':
    'configs/baselines/clip-sdm_vit-b16_1xb64_cuhk-pedes.py',
    'configs/gadms/gadms_tiny_cuhk-pedes.py':
    'configs/gadms/gadms_tiny_1xb64_cuhk-pedes.py',
    'configs/gadms/gadms_tiny_icfg-pedes.py':
    'configs/gadms/gadms_tiny_1xb64_icfg-pedes.py',
    'configs/gadms/gadms_tiny_rstpreid.py':
    'configs/gadms/gadms_tiny_1xb64_rstpreid.py',
    'configs/gadms/gadms_tiny_synthperson.py':
    'configs/gadms/gadms_tiny_1xb64_synthperson.py',
    'configs/gadms/gadms_tiny_synthperson-noise40.py':
    'configs/gadms/gadms_tiny_1xb64_synthperson-noise40.py',
    'configs/gadms/gadms_tiny_synthperson-noise40_constant-scores.py':
    'configs/gadms/gadms_tiny_1xb64_synthperson-noise40_constant-scores.py',
    'configs/gadms/gadms_tiny_synthperson-noise40_demo.py':
    'configs/gadms/gadms_tiny_1xb64_synthperson-noise40_demo.py',
    'configs/gadms/gadms_tiny_synthperson-noise40_rank-scores.py':
    'configs/gadms/gadms_tiny_1xb64_synthperson-noise40_rank-scores.py',
    'configs/gadms/vitb16_webperson.py':
    'configs/gadms/gadms_vit-b16_8xb64_webperson.py',
    'configs/gadms/vitb16_webperson-100k.py':
    'configs/gadms/gadms_vit-b16_8xb64_webperson-100k.py',
    'configs/gadms/vitb16_webperson-1m.py':
    'configs/gadms/gadms_vit-b16_8xb64_webperson-1m.py',
    'configs/gadms/vitb16_webperson_coderecipe.py':
    'configs/gadms/gadms_vit-b16_8xb128_webperson_coderecipe.py',
    'configs/gadms/vitb16_webperson_consensus.py':
    'configs/gadms/gadms_vit-b16_8xb64_webperson_consensus.py',
    'configs/gadms/vitb16_webperson_global-batch.py':
    'configs/gadms/gadms_vit-b16_8xb64_webperson_global-batch.py',
    'configs/gadms/vitb16_webperson_per-gpu-bank.py':
    'configs/gadms/gadms_vit-b16_8xb64_webperson_per-gpu-bank.py',
    'configs/gadms/vitb16_finetune_cuhk-pedes.py':
    'configs/gadms/gadms_vit-b16_1xb128_cuhk-pedes_finetune.py',
    'configs/gadms/vitb16_finetune_icfg-pedes.py':
    'configs/gadms/gadms_vit-b16_1xb128_icfg-pedes_finetune.py',
    'configs/gadms/vitb16_finetune_rstpreid.py':
    'configs/gadms/gadms_vit-b16_1xb128_rstpreid_finetune.py',
    _ABLATIONS + 'webperson-500k.py':
    _ABLATIONS + 'gadms_vit-b16_8xb64_webperson-500k.py',
    _ABLATIONS + 'row1_baseline.py':
    _ABLATIONS + 'gadms_vit-b16_8xb64_webperson-500k_row1-baseline.py',
    _ABLATIONS + 'row2_css_mtp.py':
    _ABLATIONS + 'gadms_vit-b16_8xb64_webperson-500k_row2-css-mtp.py',
    _ABLATIONS + 'row3_css_sdm.py':
    _ABLATIONS + 'gadms_vit-b16_8xb64_webperson-500k_row3-css-sdm.py',
    _ABLATIONS + 'row4_css_sdm_mtp.py':
    _ABLATIONS + 'gadms_vit-b16_8xb64_webperson-500k_row4-css-sdm-mtp.py',
    _ABLATIONS + 'row5_gass_mtp.py':
    _ABLATIONS + 'gadms_vit-b16_8xb64_webperson-500k_row5-gass-mtp.py',
    _ABLATIONS + 'row6_gass_sdm.py':
    _ABLATIONS + 'gadms_vit-b16_8xb64_webperson-500k_row6-gass-sdm.py',
    _ABLATIONS + 'row7_gass_sdm_mtp.py':
    _ABLATIONS + 'gadms_vit-b16_8xb64_webperson-500k_row7-gass-sdm-mtp.py',
}


def resolve_config_path(path: str) -> str:
    """``path``, or where the config named ``path`` lives now when it is an
    earlier name of a config of this repository (a note says so)."""
    if osp.exists(path):
        return path
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    relative = osp.relpath(osp.abspath(path), repo)
    renamed = RENAMED_CONFIGS.get(relative)
    if renamed is None:
        return path
    new_path = osp.join(osp.dirname(path), osp.basename(renamed)) if (
        osp.dirname(relative) == osp.dirname(renamed)) else osp.join(
            repo, renamed)
    warnings.warn(f'{path} is now {renamed} (docs/configs.md, "Renamed '
                  'configs"); the earlier name works until gadms 0.3',
                  FutureWarning, stacklevel=2)
    return new_path

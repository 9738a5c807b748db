"""Every command of docs/reproduce.md works as written: training commands
pass ``tools/train.py --dry-run`` for their GPU count (the config resolves
and the recipe's global batch fits the launch), every other tool accepts
its arguments and the configs named resolve."""
import os.path as osp
import shlex
import subprocess
import sys

import pytest
from common import REPO_ROOT
from doc_commands import check_command, doc_commands
from mmengine.config import DictAction

REPRODUCE = 'reproduce.md'


def test_the_doc_has_a_command_per_row():
    commands = doc_commands(REPRODUCE)
    configs = {w for c in commands for w in shlex.split(c)
               if w.startswith('configs/')}
    for row in range(1, 8):
        assert any(f'_row{row}-' in c for c in configs)
    for name in ('gadms_vit-b16_8xb64_webperson.py',
                 'gadms_vit-b16_8xb64_webperson-1m.py',
                 'gadms_vit-b16_8xb64_webperson-100k.py',
                 'gadms_vit-b16_8xb128_webperson_coderecipe.py',
                 'gadms_vit-b16_1xb128_cuhk-pedes_finetune.py',
                 'gadms_vit-b16_1xb128_icfg-pedes_finetune.py',
                 'gadms_vit-b16_1xb128_rstpreid_finetune.py'):
        assert f'configs/gadms/{name}' in configs


@pytest.mark.parametrize('command', doc_commands(REPRODUCE))
def test_doc_command(command, sandbox, monkeypatch, capsys):
    check_command(command, monkeypatch, capsys)


def test_dict_action_reads_none_as_none():
    """The IRRA-from-CLIP command's ``load_from=None`` clears the
    checkpoint; the backbone then loads the OpenAI weights
    (tests/test_tools/test_train_preflight.py checks that it does, and
    stops without them)."""
    assert DictAction._parse_iterable('None') is None


def test_the_clip_checksum_is_said_to_cover_the_jit_archive_only():
    """open_clip 3.3's `openai` entry fetches another file (the Hub's
    timm/vit_base_patch16_clip_224.openai): the page must not offer it as
    the checksummed download."""
    with open(osp.join(REPO_ROOT, 'docs', REPRODUCE), encoding='utf-8') as f:
        row, = [line for line in f if line.startswith('| OpenAI CLIP')]
    assert 'also open_clip' not in row
    assert 'timm/vit_base_patch16_clip_224.openai' in row
    assert 'is *not* this file' in row


def test_the_page_prices_every_table_as_the_script_does():
    """The cost section holds the script's output: every row and the
    per-table totals (Table 3's 12 fine-tunings, the whole paper)."""
    printed = subprocess.run(
        [sys.executable, 'benchmarks/reproduce_cost.py'], cwd=REPO_ROOT,
        capture_output=True, text=True, check=True).stdout
    with open(osp.join(REPO_ROOT, 'docs', REPRODUCE), encoding='utf-8') as f:
        page = f.read()
    lines = [line for line in printed.splitlines() if line.startswith('| ')]
    assert any(line.startswith('| the whole paper') for line in lines)
    assert any(line.startswith('| Table 3') and '| 15 |' in line
               for line in lines)
    missing = [line for line in lines if line not in page]
    assert not missing, missing


def test_one_test_command_per_table_cell():
    """Tables 2 and 4: a command per (row, benchmark) with that benchmark's
    checkpoint; Table 3: per (starting point, source, target)."""
    commands = [c for c in doc_commands(REPRODUCE)
                if c.startswith('python tools/test.py')]
    for run in ('gadms_vit-b16_8xb64_webperson-100k',
                'gadms_vit-b16_8xb64_webperson-1m',
                'gadms_vit-b16_8xb64_webperson',
                'ablations/gadms_vit-b16_8xb64_webperson-500k_row1-baseline',
                'ablations/gadms_vit-b16_8xb64_webperson-500k_row7-gass-sdm-mtp'):
        folder = run.split('/')[-1]
        for name in ('CUHK-PEDES', 'ICFG-PEDES', 'RSTPReid'):
            assert (f'python tools/test.py configs/gadms/{run}.py '
                    f'work_dirs/{folder}/best_{name}_t2i_R1_epoch_N.pth '
                    f'--benchmark {name}') in commands
    finetuned = [c for c in commands if 'finetune' in c or 'irra_' in c]
    assert len(finetuned) == 4 * 3 * 3

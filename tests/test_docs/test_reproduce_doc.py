"""Every command of docs/reproduce.md works as written: training commands
pass ``tools/train.py --dry-run`` for their GPU count (the config resolves
and the recipe's global batch fits the launch), every other tool accepts
its arguments and the configs named resolve."""
import shlex

import pytest
from doc_commands import check_command, doc_commands
from mmengine.config import DictAction

REPRODUCE = 'reproduce.md'


def test_the_doc_has_a_command_per_row():
    commands = doc_commands(REPRODUCE)
    configs = {w for c in commands for w in shlex.split(c)
               if w.startswith('configs/')}
    for row in range(1, 8):
        assert any(f'ablations/row{row}_' in c for c in configs)
    for name in ('vitb16_webperson.py', 'vitb16_webperson-1m.py',
                 'vitb16_webperson-100k.py', 'vitb16_webperson_coderecipe.py',
                 'vitb16_finetune_cuhk-pedes.py',
                 'vitb16_finetune_icfg-pedes.py',
                 'vitb16_finetune_rstpreid.py'):
        assert f'configs/gadms/{name}' in configs


@pytest.mark.parametrize('command', doc_commands(REPRODUCE))
def test_doc_command(command, sandbox, monkeypatch, capsys):
    check_command(command, monkeypatch, capsys)


def test_dict_action_reads_none_as_none():
    """The IRRA-from-CLIP command's ``load_from=None`` clears the
    checkpoint (the backbone then loads the OpenAI weights)."""
    assert DictAction._parse_iterable('None') is None

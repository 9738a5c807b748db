"""The tools say what they mean: test.py's messages for a missing or
doubled weights argument and a missing file, help texts that fit each
tool, and the same option names for the same thing across tools."""
import sys

import pytest
from common import tool_module

CONFIG = 'configs/gadms/gadms_tiny_1xb64_synthperson.py'


def _help(tool: str, monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, 'argv', [tool, '--help'])
    with pytest.raises(SystemExit):
        tool_module(tool).parse_args()
    return ' '.join(capsys.readouterr().out.split())


def test_test_py_names_a_missing_file(monkeypatch, tmp_path):
    """Before any dataset is read (it used to end in a data traceback);
    test_zero_shot.py checks the messages for a missing or doubled
    weights argument."""
    missing = str(tmp_path / 'epoch_3.pth')
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', CONFIG, missing])
    with pytest.raises(SystemExit, match=f'checkpoint {missing} does not '
                       'exist'):
        tool_module('tools/test.py').main()


def test_help_texts_fit_their_tool(monkeypatch, capsys):
    test_help = _help('tools/test.py', monkeypatch, capsys)
    assert 'e.g. test_dataloader.batch_size=32' in test_help
    assert 'where the test log goes' in test_help
    assert 'models' not in test_help and 'max_epochs' not in test_help
    train_help = _help('tools/train.py', monkeypatch, capsys)
    assert 'where logs and checkpoints go' in train_help
    assert 'e.g. train_cfg.max_epochs=2' in train_help
    retrieve_help = _help('tools/retrieve.py', monkeypatch, capsys)
    assert 'N-th caption (0-based) of --split' in retrieve_help


def test_every_retrieve_option_has_help():
    parser = tool_module('tools/retrieve.py').build_parser()
    silent = [action.dest for action in parser._actions if not action.help]
    assert not silent


def test_one_name_for_one_thing_across_tools(monkeypatch, capsys):
    """A dataset split is --split in both tools that read one; a picture
    is --out-file in retrieve.py (test.py's --out is its metrics file)."""
    retrieve_help = _help('tools/retrieve.py', monkeypatch, capsys)
    tokens_help = _help('tools/analysis_tools/visualize_token_scores.py',
                        monkeypatch, capsys)
    assert '--split {test,val}' in retrieve_help and '--split' in \
        tokens_help
    assert '--out-file OUT_FILE draw the results into this PNG' in \
        retrieve_help
    assert '--out OUT' not in retrieve_help  # the old name, hidden
    test_help = _help('tools/test.py', monkeypatch, capsys)
    assert '--out OUT dump the metrics' in test_help


def test_benchmark_keeps_one_test_set():
    """test.py --benchmark: the table cell's test set alone."""
    from mmengine.config import Config
    keep = tool_module('tools/test.py').keep_benchmark
    cfg = Config.fromfile('configs/gadms/gadms_vit-b16_8xb64_webperson.py')
    keep(cfg, 'ICFG-PEDES')
    assert cfg.test_dataloader.dataset.type == 'ICFGPEDES'
    cfg = Config.fromfile('configs/gadms/gadms_vit-b16_8xb64_webperson.py')
    with pytest.raises(SystemExit, match=r"--benchmark ICFG: the config "
                       r"tests on \['CUHK-PEDES', 'ICFG-PEDES', 'RSTPReid'\]"):
        keep(cfg, 'ICFG')

"""tools/train.py's pre-flight: the dry run's summary, the refusal to
start from random weights where a recipe expects pretrained ones, and
--paper-protocol fine-tuning that never replaces a checkpoint it is
given."""
import os

import pytest
from common import dry_run_train, tool_module

PRETRAINING = 'configs/gadms/gadms_vit-b16_8xb64_webperson.py'
FINETUNING = 'configs/gadms/gadms_vit-b16_1xb128_cuhk-pedes_finetune.py'


def _row(printed: str, label: str) -> str:
    line, = [line for line in printed.splitlines()
             if line.startswith(f'  {label} ')]
    return line[len(label) + 2:].strip()


def test_summary_of_the_8_gpu_5m_recipe(sandbox, monkeypatch, capsys):
    printed = dry_run_train([PRETRAINING, '--launcher', 'pytorch'], 8,
                            monkeypatch, capsys)
    assert _row(printed, 'processes') == '8 (launcher: pytorch)'
    assert _row(printed, 'batch') == '64 per process, 512 global'
    assert _row(printed, 'learning rate') == '0.0001'
    assert _row(printed, 'model.backbone.pretrained') == \
        'checkpoints/ViT-B-16.pt (found)'
    assert 'train_dataloader: WebPerson data/WebPerson/data (found)' in \
        printed
    # reproduce_cost.py's formula: 12 GB at 64 per GPU
    assert _row(printed, 'memory').startswith('about 12 GB per GPU at '
                                              'batch 64')
    assert 'WARNING' not in printed and printed.endswith('dry run: OK\n')
    assert 'optim_wrapper = ' not in printed  # the config: --verbose only
    printed = dry_run_train([PRETRAINING, '--launcher', 'pytorch',
                             '--verbose'], 8, monkeypatch, capsys)
    assert 'optim_wrapper = ' in printed


def test_auto_scale_lr_shows_the_scaled_rate(sandbox, monkeypatch, capsys):
    printed = dry_run_train([PRETRAINING, '--auto-scale-lr'], 4,
                            monkeypatch, capsys)
    assert _row(printed, 'learning rate') == \
        '5e-05 (0.0001 x 256/512, --auto-scale-lr)'
    assert 'but --launcher none' in printed  # 4 processes, no launcher


def test_one_gpu_scale_batch_warns_about_memory(sandbox, monkeypatch,
                                                capsys):
    """--scale-batch on one GPU: 512 per GPU, about 71 GB by the cost
    formula: more than a 40 GB card, within an 80 GB one."""
    printed = dry_run_train([PRETRAINING, '--scale-batch'], 1, monkeypatch,
                            capsys)
    assert _row(printed, 'batch') == '512 per process, 512 global'
    assert _row(printed, 'memory').startswith('about 71 GB')
    assert 'WARNING: about 71 GB per GPU at batch 512: more than a 40 GB ' \
        'card holds' in printed
    printed = dry_run_train([PRETRAINING, '--scale-batch', '--gpu-memory',
                             '80'], 1, monkeypatch, capsys)
    assert 'WARNING' not in printed


def test_missing_weights_and_data_fail_the_dry_run(sandbox, monkeypatch,
                                                   capsys):
    os.remove('checkpoints/ViT-B-16.pt')
    os.remove('data/CUHK-PEDES/reid_raw.json')
    printed = dry_run_train([PRETRAINING], 8, monkeypatch, capsys)
    assert 'MISSING: model.backbone.pretrained: checkpoints/ViT-B-16.pt ' \
        'does not exist' in printed
    assert 'MISSING: val_dataloader: CUHKPEDES reads ' \
        'data/CUHK-PEDES/reid_raw.json' in printed
    assert printed.endswith('dry run: FAILED, the run would stop\n')


@pytest.mark.parametrize('dry', [True, False])
def test_table3_none_rows_need_the_clip_weights(sandbox, monkeypatch,
                                                capsys, dry):
    """IRRA from CLIP (load_from=None): the backbone loads the OpenAI
    weights; without the file both the dry run and the real run stop,
    naming the file and the option, before a model is built."""
    none_row = [FINETUNING, '--cfg-options', 'load_from=None']
    printed = dry_run_train(none_row, 1, monkeypatch, capsys)
    assert _row(printed, 'model.backbone.pretrained') == \
        'checkpoints/ViT-B-16.pt (found)'
    os.remove('checkpoints/ViT-B-16.pt')
    if dry:
        printed = dry_run_train(none_row, 1, monkeypatch, capsys)
        assert 'MISSING: model.backbone.pretrained: checkpoints/ViT-B-16.pt'\
            in printed
        return
    monkeypatch.setattr('sys.argv', ['tools/train.py', *none_row])
    with pytest.raises(SystemExit, match='model.backbone.pretrained: '
                       'checkpoints/ViT-B-16.pt does not exist'):
        tool_module('tools/train.py').main()


def test_random_weights_need_from_scratch(sandbox, monkeypatch, capsys):
    no_weights = [FINETUNING, '--cfg-options', 'load_from=None',
                  'model.backbone.pretrained=None']
    printed = dry_run_train(no_weights, 1, monkeypatch, capsys)
    assert 'MISSING: this recipe starts from pretrained weights ' \
        '(weights_required), but model.backbone.pretrained and load_from ' \
        'are both None' in printed
    monkeypatch.setattr('sys.argv', ['tools/train.py', *no_weights])
    with pytest.raises(SystemExit, match='--from-scratch'):
        tool_module('tools/train.py').main()
    printed = dry_run_train([FINETUNING, '--from-scratch'], 1, monkeypatch,
                            capsys)
    assert _row(printed, 'weights') == 'none: random initialisation'
    assert printed.endswith('dry run: OK\n')


def test_paper_protocol_never_replaces_a_named_checkpoint(sandbox,
                                                          monkeypatch,
                                                          capsys):
    """A file named on the command line is kept; a folder (or the
    config's own load_from) gets the best CUHK-PEDES checkpoint of its
    run; a run without one is refused with a message, not a traceback."""
    named = dry_run_train([FINETUNING, '--paper-protocol', '--cfg-options',
                           'load_from=work_dirs/gadms_vit-b16_8xb64_webperson/'
                           'epoch_30.pth'], 1, monkeypatch, capsys)
    assert _row(named, 'load_from') == \
        'work_dirs/gadms_vit-b16_8xb64_webperson/epoch_30.pth (found)'
    for args in ([], [
            '--cfg-options',
            'load_from=work_dirs/gadms_vit-b16_8xb64_webperson-1m/']):
        chosen = dry_run_train([FINETUNING, '--paper-protocol', *args], 1,
                               monkeypatch, capsys)
        run = ('gadms_vit-b16_8xb64_webperson-1m' if args else
               'gadms_vit-b16_8xb64_webperson')
        assert _row(chosen, 'load_from') == (
            f'work_dirs/{run}/best_CUHK-PEDES_t2i_R1_epoch_21.pth (found)')
    os.remove('work_dirs/gadms_vit-b16_8xb64_webperson/'
              'best_CUHK-PEDES_t2i_R1_epoch_21.pth')
    monkeypatch.setattr('sys.argv', ['tools/train.py', FINETUNING,
                                     '--paper-protocol', '--dry-run'])
    with pytest.raises(SystemExit, match='matches nothing: pretrain with '
                       '--paper-protocol, or name the checkpoint file'):
        tool_module('tools/train.py').main()

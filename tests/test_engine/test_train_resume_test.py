"""The user-facing tools end to end: train, resume, evaluate."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import zipfile

import torch
from common import REPO_ROOT, run_tool
from tiny_models import SMALL_SYNTH_OPTIONS

from gadms.common.checkpoint_compat import allow_mmengine_checkpoint_globals

# these tests read MMEngine checkpoints with torch.load (weights-only), as
# a user may after allow-listing MMEngine's types
allow_mmengine_checkpoint_globals()

CONFIG = 'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py'
# a smaller model: these tests check the tools, not it
SMALL_DATA = SMALL_SYNTH_OPTIONS


def _run(*args: str) -> str:
    result = run_tool(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[
        -3000:]
    return result.stdout + result.stderr


def _pickle_globals(path: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith('data.pkl'))
        return archive.read(name)


def _epoch_losses(work_dir: str, epoch: int) -> list:
    """The logged (iteration, loss) pairs of ``epoch`` (MMEngine's
    ``vis_data/scalars.json``, one JSON object per logged step)."""
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars[0])]
    return [(row['iter'], row['loss']) for row in rows
            if 'loss' in row and row['epoch'] == epoch]


def _assert_same_epoch_2(first_dir: str, resumed_dir: str, first: dict,
                         resumed: dict) -> None:
    losses = _epoch_losses(first_dir, 2)
    assert losses and losses == _epoch_losses(resumed_dir, 2)
    assert first['state_dict'].keys() == resumed['state_dict'].keys()
    for key, value in first['state_dict'].items():
        assert torch.equal(resumed['state_dict'][key], value), key


def test_train_save_resume_and_test(tmp_path):
    first_dir, resumed_dir = str(tmp_path / 'first'), str(tmp_path / 'resumed')
    _run('tools/train.py', CONFIG, '--work-dir', first_dir, '--cfg-options',
         'train_cfg.max_epochs=2', 'train_cfg.val_interval=2', *SMALL_DATA)
    epoch_1 = osp.join(first_dir, 'epoch_1.pth')
    # MMEngine's own checkpoint loads under torch's weights-only unpickler
    # and carries no getattr call
    checkpoint = torch.load(epoch_1, map_location='cpu', weights_only=True)
    assert checkpoint['meta']['epoch'] == 1
    assert b'getattr' not in _pickle_globals(epoch_1)

    log = _run('tools/train.py', CONFIG, '--work-dir', resumed_dir,
               '--resume', epoch_1, '--cfg-options', 'train_cfg.max_epochs=2',
               'train_cfg.val_interval=2', *SMALL_DATA)
    assert 'resumed epoch: 1, iter: 8' in log
    assert 'Epoch(train) [1]' not in log and 'Epoch(train) [2][8/8]' in log
    resumed = torch.load(osp.join(resumed_dir, 'epoch_2.pth'),
                         map_location='cpu', weights_only=True)
    assert resumed['meta']['epoch'] == 2 and resumed['meta']['iter'] == 16
    key = 'backbone.clip.visual.proj'
    assert not torch.equal(resumed['state_dict'][key],
                           checkpoint['state_dict'][key])
    # the resumed epoch 2 is the uninterrupted one: same losses, weights
    # and learning-rate schedule
    first_final = torch.load(osp.join(first_dir, 'epoch_2.pth'),
                             map_location='cpu', weights_only=True)
    _assert_same_epoch_2(first_dir, resumed_dir, first_final, resumed)
    assert resumed['param_schedulers'] == first_final['param_schedulers']

    out = str(tmp_path / 'metrics.json')
    log = _run('tools/test.py', CONFIG, osp.join(resumed_dir, 'epoch_2.pth'),
               '--work-dir', resumed_dir, '--out', out, '--cfg-options',
               *SMALL_DATA)
    metrics = json.load(open(out))
    assert set(metrics) == {
        't2i/R1', 't2i/R5', 't2i/R10', 't2i/mAP', 't2i/mINP'
    }
    assert 0 <= metrics['t2i/R1'] <= metrics['t2i/R5'] <= \
        metrics['t2i/R10'] <= 100
    assert 'text-to-image retrieval' in log


def _run_script(*args: str) -> str:
    env = dict(os.environ)
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env['PATH']
    result = subprocess.run(['bash', *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[
        -3000:]
    return result.stdout + result.stderr


def test_two_cpu_processes_train_and_evaluate_like_one(tmp_path):
    """torchrun on CPU: gloo, DDP without device ids; distributed testing
    on an odd-sized gallery gives the single-process metrics."""
    work_dir = str(tmp_path / 'dist')
    odd_test = ['test_dataloader.dataset.images_per_identity=3']
    _run_script('tools/dist_train.sh', CONFIG, '2', '--work-dir', work_dir,
                '--cfg-options', 'train_cfg.max_epochs=2',
                'train_cfg.val_interval=2', *SMALL_DATA)
    checkpoint = osp.join(work_dir, 'epoch_2.pth')
    dist_out = str(tmp_path / 'dist.json')
    single_out = str(tmp_path / 'single.json')
    _run_script('tools/dist_test.sh', CONFIG, checkpoint, '2', '--out',
                dist_out, '--work-dir', work_dir, '--cfg-options',
                *SMALL_DATA, *odd_test)
    _run('tools/test.py', CONFIG, checkpoint, '--out', single_out,
         '--work-dir', work_dir, '--cfg-options', *SMALL_DATA, *odd_test)
    dist_metrics = json.load(open(dist_out))
    single_metrics = json.load(open(single_out))
    assert dist_metrics.keys() == single_metrics.keys()
    for key, value in single_metrics.items():
        assert abs(dist_metrics[key] - value) < 1e-6, key


def test_gadms_checkpoint_carries_the_score_bank(tmp_path):
    config = 'configs/gadms/gadms_tiny_1xb64_synthperson-noise40.py'
    first_dir, resumed_dir = str(tmp_path / 'first'), str(tmp_path / 'next')
    _run('tools/train.py', config, '--work-dir', first_dir, '--cfg-options',
         'train_cfg.max_epochs=2', 'train_cfg.val_interval=2', *SMALL_DATA)
    epoch_1 = torch.load(osp.join(first_dir, 'epoch_1.pth'),
                         map_location='cpu', weights_only=True)
    bank = epoch_1['score_bank']
    # 16 identities x 4 photos x 2 captions, 77 scores each
    assert bank.shape == (128, 77) and bank.dtype == torch.float16
    # every caption was scored in epoch 1: no 0.85 left, SOT scores 0
    assert (bank[:, 0] == 0).all() and (bank <= 1).all()
    assert not (bank == torch.tensor(0.85, dtype=torch.float16)).any()
    log = _run('tools/train.py', config, '--work-dir', resumed_dir,
               '--resume', osp.join(first_dir, 'epoch_1.pth'),
               '--cfg-options', 'train_cfg.max_epochs=2',
               'train_cfg.val_interval=2', *SMALL_DATA)
    assert 'resumed epoch: 1' in log
    # epoch 2 masked with the restored bank: the same losses, weights and
    # final bank as the uninterrupted run
    first, resumed = (torch.load(osp.join(d, 'epoch_2.pth'),
                                 map_location='cpu', weights_only=True)
                      for d in (first_dir, resumed_dir))
    _assert_same_epoch_2(first_dir, resumed_dir, first, resumed)
    assert torch.equal(resumed['score_bank'], first['score_bank'])

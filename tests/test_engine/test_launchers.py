"""The slurm launcher on CPU: two srun-like tasks train together on gloo."""
import glob
import os
import os.path as osp
import socket
import subprocess
import sys

from common import REPO_ROOT

CONFIG = 'configs/baselines/clip-sdm_tiny_synthperson.py'
OPTIONS = [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=100',
    'train_dataloader.dataset.num_identities.train=8',
    'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_slurm_launcher_on_cpu(tmp_path):
    port = str(_free_port())
    tasks = []
    for rank in range(2):
        env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_NTASKS='2',
                   SLURM_LOCALID=str(rank), SLURM_NODELIST='localhost',
                   MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
        tasks.append(subprocess.Popen(
            [sys.executable, 'tools/train.py', CONFIG, '--launcher', 'slurm',
             '--work-dir', str(tmp_path), '--cfg-options', *OPTIONS],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    logs = [task.communicate(timeout=300)[0] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], logs[0][-3000:]
    assert '2 process(es)' in logs[0]  # the console header
    log_file, = glob.glob(osp.join(tmp_path, '*', '*.log'))
    with open(log_file) as f:  # the environment report is in the log file
        logged = f.read()
    assert 'Distributed launcher: slurm' in logged
    assert 'Distributed training: True' in logged
    # 64 captions / (2 ranks x 8) = 4 iterations an epoch
    assert 'Epoch(train) [2][4/4]' in logs[0]
    assert osp.isfile(osp.join(tmp_path, 'epoch_2.pth'))

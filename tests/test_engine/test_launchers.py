"""The slurm launcher on CPU: two srun-like tasks train together on gloo;
dist_train.sh without torchrun on PATH."""
import glob
import os
import os.path as osp
import socket
import subprocess

from common import REPO_ROOT

from gadms.testing.forked_tools import start_forked_tool

CONFIG = 'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py'
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
    tasks, outputs = [], []
    for rank in range(2):
        env = dict(os.environ, SLURM_PROCID=str(rank), SLURM_NTASKS='2',
                   SLURM_LOCALID=str(rank), SLURM_NODELIST='localhost',
                   MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
        outputs.append(str(tmp_path / f'task{rank}.out'))
        tasks.append(start_forked_tool(
            ['tools/train.py', CONFIG, '--launcher', 'slurm', '--work-dir',
             str(tmp_path / 'work'), '--cfg-options', *OPTIONS],
            outputs[-1], cwd=REPO_ROOT, env=env))
    for task in tasks:
        task.join(300)
        if task.exitcode is None:  # hung: fail below, leave nothing behind
            task.kill()
            task.join()
    logs = []
    for output in outputs:
        with open(output) as f:
            logs.append(f.read())
    assert [task.exitcode for task in tasks] == [0, 0], logs[0][-3000:]
    assert '2 process(es)' in logs[0]  # the console header
    log_file, = glob.glob(osp.join(tmp_path, 'work', '*', '*.log'))
    with open(log_file) as f:  # the environment report is in the log file
        logged = f.read()
    assert 'Distributed launcher: slurm' in logged
    assert 'Distributed training: True' in logged
    # 64 captions / (2 ranks x 8) = 4 iterations an epoch
    assert 'Epoch(train) [2][4/4]' in logs[0]
    assert osp.isfile(osp.join(tmp_path, 'work', 'epoch_2.pth'))


def test_dist_train_finds_torchrun_in_the_project_and_prints_once(tmp_path):
    """With only /usr/bin and /bin on PATH (no torchrun, no activated
    environment) tools/dist_train.sh runs torch.distributed.run with the
    project's Python; the dry run of its two processes prints one
    summary (rank 0's) and starts no process group."""
    env = dict(HOME=os.environ.get('HOME', str(tmp_path)),
               PATH='/usr/bin:/bin', PORT=str(_free_port()))
    done = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--dry-run'],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count('dry run: what this launch would train') == 1
    assert 'processes      2 (launcher: pytorch)' in done.stdout
    assert 'dry run: OK' in done.stdout

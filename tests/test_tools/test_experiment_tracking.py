"""``tools/train.py --tensorboard``: the losses and the validation metrics
reach a TensorBoard event file."""
import glob
import os.path as osp

from common import run_tool
from tensorboard.backend.event_processing.event_accumulator import \
    EventAccumulator
from tiny_models import SHRINK_OPTIONS, SMALL_SYNTH_OPTIONS

CONFIG = 'configs/gadms/gadms_tiny_1xb64_synthperson.py'


def test_tensorboard_event_file_holds_losses_and_metrics(tmp_path):
    work_dir = str(tmp_path / 'run')
    result = run_tool(
        'tools/train.py', CONFIG, '--tensorboard', '--work-dir', work_dir,
        '--cfg-options', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1', *SHRINK_OPTIONS,
        *SMALL_SYNTH_OPTIONS)
    assert result.returncode == 0, result.stderr[-3000:]
    events, = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                 'events.out.tfevents.*'))
    tags = EventAccumulator(events).Reload().Tags()['scalars']
    assert {'loss', 'loss_sdm', 'loss_mtp', 'lr'} <= set(tags)
    assert {'t2i/R1', 't2i/mAP', 't2i/mINP'} <= set(tags)

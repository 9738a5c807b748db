from mmengine.runner import EpochBasedTrainLoop

from gadms.registry import LOOPS


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """Epoch-based training that resumes exactly in the middle of an epoch.

    MMEngine's loop restarts the epoch after resuming from a checkpoint
    saved mid-epoch (``CheckpointHook(by_epoch=False)``), training its first
    batches twice. This loop tells the sampler to skip the samples the
    epoch has already used (``ResumableSampler`` and
    ``IdentityBalancedSampler`` can), so the resumed run sees the batches
    the uninterrupted run would have seen, with the same batch indices.

    Use in configs::

        train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=30,
                         val_interval=1)
    """

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self._iter - self._epoch * len(self.dataloader)
        if done > 0:
            self._skip_trained_batches(done)
        for idx, data_batch in enumerate(self.dataloader,
                                         start=max(done, 0)):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _skip_trained_batches(self, num_batches: int) -> None:
        sampler = self.dataloader.sampler
        if not hasattr(sampler, 'skip_samples'):
            raise RuntimeError(
                f'resuming inside epoch {self._epoch + 1} needs a sampler '
                f'that can skip the trained samples; {type(sampler).__name__}'
                " cannot: use dict(type='ResumableSampler', shuffle=True)")
        sampler.skip_samples = num_batches * self.dataloader.batch_size
        self.runner.logger.info(
            f'resuming inside epoch {self._epoch + 1}: skipping its '
            f'{num_batches} trained batches')

# defaults to use registries in gadms
default_scope = 'gadms'
# atomic checkpoint writes, clear errors for broken checkpoints, auto-resume
# that skips them (gadms/engine/runner.py)
runner_type = 'GADMSRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        save_best='t2i/R1',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # RNG states in checkpoints, restored on resume
    random_state=dict(type='RandomStateHook'),
    # a bounded number of progress lines during validation and testing
    eval_progress=dict(type='EvalProgressHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when CUDA is unavailable
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)

# WebPerson pretraining, then direct transfer to the three benchmarks.
# Training data: the Hugging Face parquet shards under data/WebPerson/data/
# (for the released code's JSON form set ann_file='100w.json', the released
# 1M file, with images under data/WebPerson/images/).
# LoadPersonImage(on_error='skip') would skip undecodable web images,
# listing them in the run's log folder; the default fails on the first one.
_base_ = ['./cuhk_pedes.py']

train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    dataset=dict(
        _delete_=True,
        type='WebPerson',
        data_root='data/WebPerson',
        ann_file='data',
        pipeline={{_base_.train_pipeline}}),
)
# The three benchmarks and their test pipeline.
benchmark_roots = dict(
    CUHKPEDES='data/CUHK-PEDES',
    ICFGPEDES='data/ICFG-PEDES',
    RSTPReid='data/RSTPReid')
test_pipeline = {{_base_.test_pipeline}}
# Model selection on the benchmarks' val splits: CUHK-PEDES and RSTPReid
# have one, ICFG-PEDES has none and is left out of selection. save_best
# 't2i/R1' is the mean over the two; each appears as '<name>/t2i/R1'.
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(type=kind, data_root=benchmark_roots[kind], split='val',
                 pipeline=test_pipeline)
            for kind in ('CUHKPEDES', 'RSTPReid')
        ]))
# Direct transfer: one tools/test.py run prints a row per benchmark.
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(type=kind, data_root=root, split='test',
                 pipeline=test_pipeline)
            for kind, root in benchmark_roots.items()
        ]))

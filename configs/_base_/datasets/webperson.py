# WebPerson pretraining (JSON form: data/WebPerson/{annotations.json,
# images/}); direct-transfer validation and test on CUHK-PEDES test.
_base_ = ['./cuhk_pedes.py']

train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    dataset=dict(
        _delete_=True,
        type='WebPerson',
        data_root='data/WebPerson',
        ann_file='annotations.json',
        pipeline={{_base_.train_pipeline}}),
)
# the released code selects on the test split (IRRA convention); gadms
# validates on it too for comparability, see docs/method.md
val_dataloader = dict(dataset=dict(split='test'))

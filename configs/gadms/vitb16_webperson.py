# GA-DMS pretraining on WebPerson, paper recipe (method.md 6.1): ViT-B/16
# at 384x128 from OpenAI CLIP, tau 0.02, beta 0.4, Adam lr 1e-4 (eps 1e-3,
# wd 4e-5), 30 epochs, global batch 512 (8 x 64):
#   tools/dist_train.sh configs/gadms/vitb16_webperson.py 8
_base_ = [
    '../_base_/models/gadms_vitb16.py',
    '../_base_/datasets/webperson.py',
    '../_base_/schedules/adam_30e_pretrain.py',
    '../_base_/default_runtime.py',
]

# The paper's recipe (gadms_vit-b16_8xb64_webperson.py) on WebPerson 1.0M (Tables 1-3,
# "WebPerson 1.0M"): the Hub's 1M scale under data/WebPerson-1M.
_base_ = ['./gadms_vit-b16_8xb64_webperson.py']

train_dataloader = dict(dataset=dict(data_root='data/WebPerson-1M'))

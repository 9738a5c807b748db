"""The model card (``README.md``) of a pretrained folder: what the model
is, what it was trained and tested on, how to load it and its limits, in
the Hugging Face Hub's format (YAML front matter, then Markdown)."""
from typing import Dict, List, Optional

from mmengine.config import Config
from torch import nn

from gadms.version import __version__


def _datasets(dataloader: Optional[dict]) -> List[str]:
    """``Type (data_root)`` of each dataset a dataloader reads."""
    if not dataloader:
        return []
    dataset = dataloader.get('dataset', {})
    parts = dataset.get('datasets', [dataset])
    return [f"{part.get('type', '?')} ({part.get('data_root', 'no root')})"
            for part in parts]


def _arch(cfg: Config) -> str:
    """The backbone's architecture: a named one, or a custom one's
    settings."""
    arch = cfg.model.backbone.get('arch', 'the backbone default')
    if isinstance(arch, str):
        return arch
    return 'custom: ' + ', '.join(f'{k}={v}' for k, v in sorted(
        arch.items()) if not isinstance(v, dict))


def _metrics_table(metrics: Dict[str, float]) -> str:
    if not metrics:
        return ('No test metrics were given at export '
                '(`export_pretrained.py --metrics`).')
    rows = '\n'.join(f'| {name} | {value:.2f} |'
                     for name, value in sorted(metrics.items()))
    return '| metric | value |\n| --- | ---: |\n' + rows


def model_card(name: str, cfg: Config, model: nn.Module,
               metrics: Dict[str, float], source: dict,
               fingerprint: str) -> str:
    """The card's text.

    Args:
        name (str): The model's name (the folder's).
        cfg (Config): The training config the checkpoint came from.
        model (nn.Module): The loaded model (its size and input shapes).
        metrics (dict): Test metrics (``t2i/R1``...), possibly empty.
        source (dict): ``config`` and ``checkpoint`` (paths) and
            ``checkpoint_sha256``.
        fingerprint (str): The model's fingerprint (config and weights).
    """
    backbone = model.backbone
    height, width = backbone.image_size
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    train = _datasets(cfg.get('train_dataloader')) or ['not in the config']
    test = _datasets(cfg.get('test_dataloader')) or ['not in the config']
    epochs = cfg.get('train_cfg', {}).get('max_epochs', '?')
    training = '\n'.join(f'- {item}' for item in train)
    testing = '\n'.join(f'- {item}' for item in test)
    return f"""---
library_name: gadms
tags:
- text-based-person-retrieval
- person-search
- clip
---

# {name}

A text-based person retrieval model: it ranks images of people by how
well they match a sentence such as "a woman in a red down jacket carrying
a black backpack". Trained with gadms ({cfg.model.type}).

## Model

- Architecture: {cfg.model.type} on a {type(backbone).__name__} backbone
  ({_arch(cfg)}), {parameters:.1f}M parameters.
- Images: {height} x {width} (height x width) person crops; captions: up
  to {backbone.context_length} tokens (CLIP's BPE).
- Output: L2-normalised {backbone.embed_dim}-d image and text features;
  the score of a pair is their cosine similarity.

## Training data

{training}

{epochs} epochs (config `{source.get('config', '?')}`).

## Results

Tested on:

{testing}

{_metrics_table(metrics)}

## How to use

```python
from gadms.apis import TextPersonInferencer

inferencer = TextPersonInferencer.from_pretrained('{name}')
index = inferencer.build_index('my_gallery/')
hits = inferencer.search('a man in a red jacket', index, topk=10)
```

or in the browser: `python tools/serve.py --pretrained {name} --gallery
my_gallery/`. Loading runs no code from this folder: the weights are
safetensors, the config is JSON, and only modules registered with gadms
are built.

## Limits

- It matches the appearance of one person per image (a detector's crop);
  whole scenes, groups or faces are outside what it learned.
- Its scores rank a gallery; they are not calibrated probabilities, and a
  top result is not an identification.
- It learned from its training captions and images: their biases
  (clothing, cultures, camera views, the errors of machine-written
  captions) carry over. Test it on your own data before relying on it.
- Searching people by description can be used for surveillance. Use it
  only where the people in the gallery have consented or the law
  explicitly allows it.

## Provenance

- Exported by gadms {__version__} from checkpoint
  `{source.get('checkpoint', '?')}` (sha256
  `{source.get('checkpoint_sha256', '?')}`).
- Fingerprint (config and weights): `{fingerprint}`; the loader refuses
  weights or a config that no longer match it.
"""

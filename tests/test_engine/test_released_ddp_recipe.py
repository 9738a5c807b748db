"""The released-code recipe trains as the released GA-DMS code did on 8 GPUs.

Two SGD steps of a tiny GA-DMS on one global batch of 32 captions of a
WebPerson corpus (16 images), three ways:

(a) the released code's semantics (``released_reference.py``, written from
    method.md: its own GASS, masks, SDM, MTP, per-GPU score banks and
    webreid.py's pids, one per image, with the released constants) on 8 gloo
    processes x 4 captions, gradients averaged over ranks as DDP does;
(b) gadms built from
    ``configs/gadms/gadms_vit-b16_8xb128_webperson_coderecipe.py``: every
    setting read from the config (the model, the score bank hook, the
    dataset's identity option), only the network shrunk and the per-GPU
    batch scaled from ``released_gpu_batch`` to 4, on 8 gloo processes x 4;
(c) the same in 1 process x 32.

The second step masks with the scores the first one wrote, and half of
the captions move to another rank between the steps, so score banks that
are shared and banks that are per GPU give different masks. Only the random
draws are shared with gadms (the keyed uniforms of ``DualMaskNeck``, keyed
by sample: purposes 0-2 for the noise view, 3-5 for the MTP view).

Then each setting of the recipe is changed alone (in 1 process x 32) and
must break the equality with (a).
"""
import copy
import os.path as osp

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
import torch.nn.functional as F
from common import EOT, REPO_ROOT, SOT, spawn_workers
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from released_reference import (BETA, MASK_ID, SCORE_INIT, info_probs,
                                masked_view, noise_probs, released_gass,
                                released_sdm, webreid_pids)
from tiny_models import tiny_backbone_cfg

from gadms.cli import register_all_modules
from gadms.models.score_bank import TokenScoreBank
from gadms.models.utils import keyed_uniform
from gadms.registry import DATASETS, MODELS
from gadms.structures import TextPersonDataSample

RECIPE = 'configs/gadms/gadms_vit-b16_8xb128_webperson_coderecipe.py'
WORLD, LOCAL = 8, 4
GLOBAL = WORLD * LOCAL
TEXT_LAYERS = 2  # the tiny network's; the recipe scores the last 8 of 12
FIRST_IMAGE = 50  # samples 100-131: bank keys are not batch positions
CORPUS_IMAGES = FIRST_IMAGE + GLOBAL // 2
MASK_SEED = 1234
LR = 0.5

# one setting of the recipe changed at a time (--cfg-options style)
MUTATIONS = {
    'attn_norm paper': {'model.scorer.attn_norm': 'paper'},
    'score groups of 256': {'model.scorer.group_size': 256},
    'scores over the global batch': {'model.scorer.norm_scope': 'batch',
                                     'model.scorer.group_size': None},
    'beta 0.4': {'model.mtp_head.loss.loss_weight': 0.4},
    'MTP mean over the global batch': {
        'model.mtp_head.loss.norm_scope': 'batch',
        'model.mtp_head.loss.group_size': None},
    'temperature 0.03': {'model.loss.temperature': 0.03},
    'SDM weight 1': {'model.loss.loss_weight': 1.0},
    'no forced noise mask': {'model.neck.force_one_noise': False},
    'synced score bank': {'custom_hooks': [dict(type='ScoreBankHook',
                                                context_length=77)]},
    'one identity per caption': {
        'train_dataloader.dataset.identity': 'caption'},
}


def _write_corpus(folder: str) -> str:
    """A WebPerson parquet corpus of ``CORPUS_IMAGES`` images."""
    pq.write_table(pa.table(dict(
        image=[dict(bytes=b'', path=f'{i}.jpg')
               for i in range(CORPUS_IMAGES)],
        image_path=[f'{i}.jpg' for i in range(CORPUS_IMAGES)],
        caption1=[f'a person number {i}' for i in range(CORPUS_IMAGES)],
        caption2=[f'the person {i} walks' for i in range(CORPUS_IMAGES)])),
        osp.join(folder, 'train-00000-of-00001.parquet'))
    return folder


def _setup(cfg: Config, corpus: str) -> dict:
    """What gadms runs for a recipe: the model config (network shrunk,
    per-GPU sizes scaled), the score bank's group size and each sample's
    pid as the recipe's dataset gives it."""
    released_batch = cfg.released_gpu_batch
    assert cfg.train_dataloader.batch_size == released_batch
    assert cfg.auto_scale_lr.base_batch_size == WORLD * released_batch

    def scaled(size):
        return None if size is None else size * LOCAL // released_batch

    model = copy.deepcopy(cfg.model.to_dict())
    model['backbone'] = tiny_backbone_cfg()
    model['scorer'].update(num_layers=TEXT_LAYERS, group_size=scaled(
        model['scorer'].get('group_size')))
    model['neck']['seed'] = MASK_SEED
    loss = model['mtp_head']['loss']
    loss['group_size'] = scaled(loss.get('group_size'))
    model['mtp_head'].update(depth=1, heads=2)
    bank, = [h for h in cfg.custom_hooks if h['type'] == 'ScoreBankHook']
    group = scaled(bank['group_size']) if bank.get(
        'mode', 'synced') == 'per_group' else None
    dataset = dict(cfg.train_dataloader.dataset.to_dict(), data_root=corpus,
                   ann_file='.', pipeline=[])
    dataset = DATASETS.build(dataset)
    pids = {i: dataset.get_data_info(i)['pid']
            for i in range(2 * FIRST_IMAGE, 2 * CORPUS_IMAGES)}
    return dict(model=model, bank_group=group, pids=pids)


def _order(step: int) -> list:
    """The global batch's sample keys: in step 1 the captions at odd
    positions move one rank on (the even ones stay)."""
    keys = list(range(2 * FIRST_IMAGE, 2 * CORPUS_IMAGES))
    if step == 0:
        return keys
    return [keys[i] if i % 2 == 0 else keys[(i - LOCAL) % GLOBAL]
            for i in range(GLOBAL)]


def _samples(step: int, rank: int, world_size: int, pids: dict) -> dict:
    """This rank's share of the step's global batch: random images and
    captions of 5 to 20 tokens, fixed per sample key."""
    inputs, samples = [], []
    size = GLOBAL // world_size
    for key in _order(step)[rank * size:(rank + 1) * size]:
        generator = torch.Generator().manual_seed(key)
        inputs.append(torch.randint(0, 256, (3, 32, 16), dtype=torch.uint8,
                                    generator=generator))
        length = 5 + key % 16
        ids = torch.zeros(1, 77, dtype=torch.long)
        ids[0, 0] = SOT
        ids[0, 1:1 + length] = torch.randint(1, MASK_ID, (length, ),
                                             generator=generator)
        ids[0, 1 + length] = EOT
        sample = TextPersonDataSample().set_pid(pids[key]).set_text_ids(ids)
        sample.set_metainfo(dict(sample_idx=key))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _set_iter(step: int) -> None:
    MessageHub.get_current_instance().update_info('iter', step)


def _params(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---- (b), (c): gadms --------------------------------------------------


def _gadms_steps(setup: dict, initial: dict, rank: int,
                 world_size: int) -> tuple:
    model = MODELS.build(copy.deepcopy(setup['model']))
    model.load_state_dict(initial)
    model.score_bank = TokenScoreBank(
        2 * CORPUS_IMAGES, init_value=model.score_init,
        group_size=setup['bank_group'], batch_size=GLOBAL // world_size)
    trained = model if world_size == 1 else MMDistributedDataParallel(
        module=model, device_ids=None)
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=LR))
    for step in range(2):
        _set_iter(step)
        data = _samples(step, rank, world_size, setup['pids'])
        trained.train_step(data, optim_wrapper)
    keys = torch.tensor([s.sample_idx for s in data['data_samples']])
    return _params(model), model.score_bank.read(keys)


# ---- (a): the released code -------------------------------------------


def _released_step(model, data: dict, step: int, bank: dict) -> None:
    data = model.data_preprocessor(data, True)
    images = data['inputs']['images']
    ids = data['inputs']['text_ids']
    keys = torch.tensor([s.sample_idx for s in data['data_samples']])
    scores = torch.stack([bank.get(int(k), torch.full((77, ), SCORE_INIT))
                          for k in keys])

    def draws(first):
        positions = torch.arange(77)[None, :]
        return [keyed_uniform(MASK_SEED, step, keys[:, None], positions,
                              purpose) for purpose in range(first, first + 3)]

    noise_ids, _ = masked_view(ids, noise_probs(scores), draws(0))
    mtp_ids, labels = masked_view(ids, info_probs(scores), draws(3))
    backbone, head = model.backbone, model.mtp_head
    image_tokens = backbone.encode_image(images)
    eos = ids.argmax(dim=1)
    text_feats = backbone.encode_text(noise_ids)[torch.arange(LOCAL), eos]
    # webreid.py's pids: both captions of an image share one
    pids = torch.tensor(webreid_pids(CORPUS_IMAGES))[keys]
    sdm = released_sdm(image_tokens[:, 0], text_feats, pids, WORLD)
    logits = head.mlm_head(head(backbone.encode_text(mtp_ids),
                                image_tokens))
    mtp = F.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                          ignore_index=0)  # mean over this rank's tokens
    new_scores = released_gass(backbone.clip, ids,
                               image_tokens[:, 0].detach().float(),
                               TEXT_LAYERS)
    for key, row in zip(keys.tolist(), new_scores):  # this GPU's copy
        bank[key] = row.half().float()
    model.zero_grad()
    (sdm + BETA * mtp).backward()
    with torch.no_grad():
        for param in model.parameters():
            if param.grad is None:  # not in the loss (e.g. logit_scale)
                continue
            dist.all_reduce(param.grad)  # DDP: the mean over ranks
            param -= LR * param.grad / WORLD


def _released_steps(setup: dict, initial: dict, rank: int) -> tuple:
    model = MODELS.build(copy.deepcopy(setup['model']))  # the network only
    model.load_state_dict(initial)
    bank = {}
    for step in range(2):
        data = _samples(step, rank, WORLD, setup['pids'])
        _released_step(model, data, step, bank)
    keys = [s.sample_idx for s in data['data_samples']]
    return _params(model), torch.stack([bank[k] for k in keys])


def _worker(rank: int, tmp_dir: str, setup: dict, initial: dict) -> None:
    torch.set_num_threads(1)
    register_all_modules()
    dist.init_process_group(
        'gloo', init_method=f'file://{osp.join(tmp_dir, "init")}',
        rank=rank, world_size=WORLD)
    MessageHub.get_instance(f'released-{rank}')
    result = dict(released=_released_steps(setup, initial, rank),
                  recipe=_gadms_steps(setup, initial, rank, WORLD))
    torch.save(result, osp.join(tmp_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def _update_error(params: dict, expected: dict, initial: dict) -> tuple:
    """The parameter whose update differs most, relative to the tolerance:
    1e-5 of the update's size plus the fp32 rounding of the stored
    parameter (2 ulp of its largest value). Returns (the difference in
    tolerances, the parameter's name): 1 or less means equal."""
    worst = (0.0, '')
    for key, value in expected.items():
        scale = float((value - initial[key]).abs().max())
        rounding = 2 * torch.finfo(torch.float32).eps * float(
            value.abs().max())
        error = float((params[key] - value).abs().max())
        worst = max(worst, (error / (1e-5 * scale + rounding), key))
    return worst


def _recipe(corpus: str, changes: dict = None) -> dict:
    cfg = Config.fromfile(osp.join(REPO_ROOT, RECIPE))
    if changes:
        cfg.merge_from_dict(changes)
    return _setup(cfg, corpus)


def test_released_gass_reference_matches_the_code_formula():
    """The reference GASS equals gadms's ``attn_norm='code'`` scorer (with
    the released min-max over the batch) and not the paper formula."""
    register_all_modules()
    torch.manual_seed(0)
    backbone = MODELS.build(tiny_backbone_cfg())
    ids = torch.zeros(6, 77, dtype=torch.long)
    for row in range(6):
        ids[row, 0], ids[row, 1:7 + 3 * row] = SOT, torch.randint(
            1, MASK_ID, (6 + 3 * row, ))
        ids[row, 7 + 3 * row] = EOT
    image_tokens = backbone.encode_image(torch.randn(6, 3, 32, 16))
    reference = released_gass(backbone.clip, ids,
                              image_tokens[:, 0].detach().float(),
                              TEXT_LAYERS)
    scores = {}
    for formula in ('code', 'paper'):
        scorer = MODELS.build(dict(type='GradAttnScorer',
                                   num_layers=TEXT_LAYERS, attn_norm=formula))
        scores[formula] = scorer(backbone, ids, image_tokens)
    torch.testing.assert_close(scores['code'], reference, atol=1e-5, rtol=0)
    assert float((scores['paper'] - reference).abs().max()) > 0.1


def test_recipe_equals_released_code_on_8_processes_and_on_one(tmp_path):
    register_all_modules()
    corpus = _write_corpus(str(tmp_path))
    setup = _recipe(corpus)
    assert len(set(setup['pids'].values())) == GLOBAL // 2  # one per image
    torch.manual_seed(0)
    initial = _params(MODELS.build(copy.deepcopy(setup['model'])))
    spawn_workers(_worker, WORLD, (str(tmp_path), setup, initial))
    ranks = [torch.load(osp.join(tmp_path, f'rank{r}.pt'))
             for r in range(WORLD)]
    MessageHub.get_instance('one-process')
    single = _gadms_steps(setup, initial, 0, 1)

    released_params, _ = ranks[0]['released']
    changed = sum(not torch.equal(v, initial[k])
                  for k, v in released_params.items())
    assert changed > 20  # both steps did train the model
    runs = {f'recipe 8 x 4, rank {r}': result['recipe']
            for r, result in enumerate(ranks)}
    runs.update({f'released, rank {r}': result['released']
                 for r, result in enumerate(ranks)})
    runs['recipe 1 x 32'] = single
    for run, (params, _) in runs.items():
        tolerances, key = _update_error(params, released_params, initial)
        assert tolerances <= 1, f'{run}: {key} differs by {tolerances:.3g} tol'
    released_scores = torch.cat([r['released'][1] for r in ranks])
    assert float(released_scores.max()) == 1.0  # normalised per rank
    assert (released_scores == SCORE_INIT).all(1).sum() == 0  # all scored
    for scores in (torch.cat([r['recipe'][1] for r in ranks]), single[1]):
        torch.testing.assert_close(scores, released_scores, atol=2e-3,
                                   rtol=0)

    for name, changes in MUTATIONS.items():
        MessageHub.get_instance(f'mutant {name}')
        params, _ = _gadms_steps(_recipe(corpus, changes), initial, 0, 1)
        tolerances, key = _update_error(params, released_params, initial)
        print(f'{name}: largest update difference {tolerances:.3g} tol '
              f'({key})')
        assert tolerances > 10, f'{name}: still equals the released code'

"""Caption backends without a Ray pipeline: servers taking turns, the
vLLM request and answer rows, the test detector."""
import base64
import hashlib
import json

import cv2
import numpy as np
import pytest

from gadms.corpus import (ContrastBoxDetector, RoundRobin, VLLMCaptionBackend,
                          draw_template)
from gadms.corpus.caption_stage import (CAPTION_SCHEMA, openai_servers,
                                        vllm_answer, vllm_request)
from gadms.corpus.captioners import PROMPT, word_confidences
from gadms.testing.loopback import FakeCaptionServer


def test_several_servers_share_the_requests_evenly():
    servers = [FakeCaptionServer() for _ in range(3)]
    captioner = openai_servers([s.url for s in servers], model='m')
    assert isinstance(captioner, RoundRobin)
    for i in range(10):
        assert captioner(f'image {i}'.encode(), 'a [person]').startswith(
            'A person ')
    assert [sum(s.requests.values()) for s in servers] == [4, 3, 3]
    for server in servers:
        server.close()


def test_templates_are_drawn_per_crop_and_caption_and_stay():
    templates = [f'template {i}' for i in range(50)]
    draws = {(crop, which): draw_template(templates, 0, crop, which)
             for crop in ('00000/a.jpg_0.jpg', '00001/b.jpg_1.jpg')
             for which in (1, 2)}
    assert len(set(draws.values())) > 1
    assert all(draw_template(templates, 0, *key) == template
               for key, template in draws.items())
    assert any(draw_template(templates, 1, *key) != template
               for key, template in draws.items())


@pytest.mark.parametrize('bank', [2, 3, 50])
def test_a_crop_never_gets_the_same_template_twice(bank):
    templates = [f'template {i}' for i in range(bank)]
    crops = [f'{i:05d}/img.jpg_{i % 3}.jpg' for i in range(2000)]
    pairs = [(draw_template(templates, 7, c, 1),
              draw_template(templates, 7, c, 2)) for c in crops]
    assert all(first != second for first, second in pairs)
    # every template is used in both positions: a draw, not a fixed pair
    assert {first for first, _ in pairs} == set(templates)
    assert {second for _, second in pairs} == set(templates)


def test_a_bank_of_one_template_gives_it_to_both_captions():
    assert draw_template(['only'], 0, 'c', 1) == draw_template(
        ['only'], 0, 'c', 2) == 'only'
    with pytest.raises(ValueError, match='which must be 1 or 2'):
        draw_template(['a', 'b'], 0, 'c', 3)


def test_vllm_rows_carry_the_request_and_the_failures():
    row = dict(shard='00003', id='00003/k_0.jpg', which=2,
               template='A [person] in [colour].', image=b'\x89PNG....')
    request = vllm_request(row, max_tokens=77, temperature=0.5)
    text, image = request['messages'][0]['content']
    assert text['text'] == PROMPT.format(template='A [person] in [colour].')
    assert base64.b64decode(image['image_url']['url'].split(',', 1)[1]) == \
        row['image']
    assert request['sampling_params'] == dict(max_tokens=77,
                                              temperature=0.5)
    answered = vllm_answer(dict(request, generated_text='A caption.'))
    assert list(answered) == CAPTION_SCHEMA.names
    assert answered['caption'] == 'A caption.' and answered['error'] is None
    assert (answered['id'], answered['which']) == (row['id'], 2)
    failed = vllm_answer(dict(request, generated_text='',
                              __inference_error__='CUDA out of memory'))
    assert failed['caption'] is None
    assert failed['error'] == 'InferenceError: CUDA out of memory'
    json.dumps(answered)  # plain values, as ray.data.llm wants


def test_contrast_detector_finds_each_block():
    image = np.full((200, 300, 3), 90, np.uint8)
    image[10:110, 20:60] = (200, 40, 40)      # 40 x 100
    image[50:190, 150:250] = (30, 220, 30)    # 100 x 140
    image[0:5, 290:295] = (255, 255, 255)     # too small
    found = ContrastBoxDetector(min_area=100)('scene.png', image)
    assert sorted(d.box for d in found) == [[20, 10, 60, 110],
                                           [150, 50, 250, 190]]
    assert all(d.score == 1.0 and d.keypoints is None for d in found)
    assert ContrastBoxDetector()('empty.png', np.full_like(image, 90)) == []
    noisy = cv2.GaussianBlur(image, (0, 0), 0.6)
    assert len(ContrastBoxDetector(min_area=100)('n.png', noisy)) == 2


def test_vllm_backend_builds_its_ray_data_llm_processor(ray_local, tmp_path):
    """The configuration is accepted by ray.data.llm (vLLM itself is not
    installed here: the engine stage is built, never run)."""
    (tmp_path / 'config.json').write_text(json.dumps(dict(
        model_type='qwen2_5_vl',
        architectures=['Qwen2_5_VLForConditionalGeneration'])))
    processor = VLLMCaptionBackend(str(tmp_path), engines=2).processor()
    assert [type(stage).__name__ for stage in processor.stages.values()] \
        == ['PrepareMultimodalStage', 'ChatTemplateStage', 'TokenizeStage',
            'vLLMEngineStage', 'DetokenizeStage']


def _fake_confidences(caption: str) -> list:
    """The fake server's rule written out per word: tokens are the
    3-character pieces ``[3k, 3k + 3)`` with log-probability ``-0.05 * (k %
    4)``; a word gets exp of the sum over the pieces it touches."""
    words, start = [], 0
    for word in caption.split(' '):
        end = start + len(word)
        pieces = range(start // 3, (end - 1) // 3 + 1)
        words.append([word, float(np.exp(sum(-0.05 * (k % 4)
                                             for k in pieces)))])
        start = end + 1
    return words


def test_logprobs_become_word_confidences():
    server = FakeCaptionServer()
    server.scripts = {hashlib.sha1(b'img').hexdigest(): [
        'A man in a red coat.']}
    captioner = openai_servers([server.url], model='m', logprobs=True)
    caption, words = captioner(b'img', 'a [person]')
    server.close()
    assert caption == 'A man in a red coat.'
    assert [w for w, _ in words] == caption.split(' ')
    np.testing.assert_allclose([p for _, p in words],
                               [p for _, p in _fake_confidences(caption)])
    # 'A m|an |in |a r|ed |coa|t.': 'man' spans tokens 0 and 1
    assert words[1][1] == np.exp(-0.05)


def test_logprobs_that_do_not_spell_the_caption_are_left_out():
    answer = dict(choices=[dict(message=dict(content='a red coat'),
                                logprobs=dict(content=[
                                    dict(token='a re', logprob=-0.1),
                                    dict(token='d', logprob=-0.2)]))])
    assert word_confidences('a red coat', answer) is None
    assert word_confidences('a red coat', dict(choices=[dict(
        message=dict(content='a red coat'))])) is None
    answer['choices'][0]['logprobs']['content'].append(
        dict(token=' coat', logprob=-0.3))
    np.testing.assert_allclose(
        [p for _, p in word_confidences('a red coat', answer)],
        np.exp([-0.1, -0.3, -0.3]))

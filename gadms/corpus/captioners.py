"""Stage 2 backends: multimodal LLMs that caption a person crop."""
import base64
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from typing import Optional, Tuple, Union

import numpy as np

from .bounded_http import AnswerTooLarge, read_bounded

PROMPT = (
    'Describe the person in this image in one paragraph of 2-4 sentences '
    'for a person search engine: gender, hair, clothing with colours, '
    'shoes, bags and other carried objects. Say only what is visible. '
    'Follow the style of this example, replacing the bracketed parts with '
    'what the image shows: "{template}"')


class CaptionError(RuntimeError):
    """A captioning request failed for good (after its retries)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: following one would send the API key to whatever
    host the server names."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises the 3xx as an HTTPError


class _Malformed(ValueError):
    """An answer that retrying will not fix."""


class OpenAIChatCaptioner:
    """Captions from an OpenAI-compatible chat-completions server (vLLM,
    SGLang, LMDeploy and most MLLM servers).

    Args:
        base_url (str): e.g. ``http://localhost:8000/v1``.
        model (str): Served model name, e.g. ``Qwen/Qwen2.5-VL-7B-Instruct``.
        api_key_env (str): Environment variable holding the API key (may
            be unset for local servers).
        api_key (str, optional): The key itself, read by the caller (a Ray
            worker on another node may not have the variable); wins over
            ``api_key_env``.
        timeout (float): Seconds per request, connection and whole answer
            included (a server that drips its answer is cut off).
        retries (int): Further attempts after a transient failure (HTTP 429
            or 5xx, connection error, timeout, answer cut short), waiting
            ``backoff * 2 ** attempt`` seconds between them.
        max_response_bytes (int): Longest answer read; a longer one fails.
        max_tokens (int): Caption length cap.
        temperature (float): Sampling temperature.
        logprobs (bool): Ask for the answer's token log-probabilities
            (vLLM and OpenAI servers return them with ``logprobs: true``)
            and return ``(caption, word_confidences)`` instead of the
            caption alone (:func:`word_confidences`).

    Redirects are not followed (they would carry the API key to another
    host), and an answer whose ``content`` is not a string fails: both
    count as failed captions, which the caption stage records.
    """

    def __init__(self,
                 base_url: str,
                 model: str,
                 api_key_env: str = 'OPENAI_API_KEY',
                 timeout: float = 60.0,
                 retries: int = 3,
                 backoff: float = 1.0,
                 max_tokens: int = 160,
                 temperature: float = 0.7,
                 max_response_bytes: int = 1 << 20,
                 api_key: Optional[str] = None,
                 logprobs: bool = False) -> None:
        self.url = base_url.rstrip('/') + '/chat/completions'
        self.model = model
        self.api_key = api_key or os.environ.get(api_key_env)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_response_bytes = max_response_bytes
        self.logprobs = logprobs
        self._opener = urllib.request.build_opener(_NoRedirects)

    def _request(self, image: bytes, template: str) -> urllib.request.Request:
        data_url = 'data:image/png;base64,' + base64.b64encode(image).decode()
        body = dict(
            model=self.model,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            messages=[dict(role='user', content=[
                dict(type='text', text=PROMPT.format(template=template)),
                dict(type='image_url', image_url=dict(url=data_url)),
            ])])
        if self.logprobs:
            body['logprobs'] = True
        headers = {'Content-Type': 'application/json'}
        if self.api_key:
            headers['Authorization'] = f'Bearer {self.api_key}'
        return urllib.request.Request(self.url, json.dumps(body).encode(),
                                      headers)

    def __call__(self, image: bytes,
                 template: str) -> Union[str, Tuple[str, Optional[list]]]:
        """Caption PNG/JPEG ``image`` bytes guided by ``template``; with
        ``logprobs``, the caption and its word confidences."""
        error: Optional[str] = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2**(attempt - 1))
            try:
                answer = self._ask(image, template)
                content = self._content(answer)
                if not self.logprobs:
                    return content
                return content, word_confidences(content, answer)
            except urllib.error.HTTPError as err:
                error = f'HTTP {err.code} from {self.url}'
                if 300 <= err.code < 400:
                    error += ' (redirects are not followed)'
                if err.code != 429 and err.code < 500:
                    break
            except (urllib.error.URLError, TimeoutError, OSError,
                    http.client.HTTPException) as err:
                error = f'{type(err).__name__}: {err} ({self.url})'
            except (_Malformed, KeyError, IndexError, TypeError,
                    ValueError) as err:
                error = f'malformed answer from {self.url}: {err}'
                break
        raise CaptionError(error)

    def _ask(self, image: bytes, template: str) -> dict:
        """One request; the whole answer must arrive within the timeout
        and fit ``max_response_bytes``."""
        deadline = time.monotonic() + self.timeout
        with self._opener.open(self._request(image, template),
                               timeout=self.timeout) as response:
            try:
                body = read_bounded(response, deadline,
                                    self.max_response_bytes)
            except AnswerTooLarge as err:
                raise _Malformed(str(err)) from err
            except TimeoutError as err:
                raise TimeoutError(f'answer not complete after '
                                   f'{self.timeout} s') from err
        return json.loads(body)

    @staticmethod
    def _content(answer: dict) -> str:
        content = answer['choices'][0]['message']['content']
        if content is None:
            return ''
        if not isinstance(content, str):
            raise _Malformed(f'content is a {type(content).__name__}, not '
                             'a string')
        return content


def word_confidences(content: str, answer: dict) -> Optional[list]:
    """``[[word, probability], ...]`` of an answer's words (runs of
    non-space characters), from the token log-probabilities of an
    OpenAI-compatible answer (``choices[0].logprobs.content``: one
    ``{token, logprob}`` per generated token, in order): a word's
    probability is exp of the sum of the log-probabilities of the tokens
    overlapping it. None when the answer has no log-probabilities or its
    tokens do not spell the caption (a tokenizer's partial UTF-8 pieces).

    A low probability marks a word the model was unsure of, which is a
    heuristic for hallucination, not a guarantee: a confidently wrong
    colour scores high, and a rare correct word low.
    """
    tokens = ((answer['choices'][0].get('logprobs') or {}).get('content')
              or [])
    if not tokens or ''.join(t['token'] for t in tokens) != content:
        return None
    ends = np.cumsum([len(t['token']) for t in tokens])
    starts = ends - [len(t['token']) for t in tokens]
    logprobs = np.array([t['logprob'] for t in tokens], dtype=np.float64)
    return [[word.group(), float(np.exp(logprobs[
        (starts < word.end()) & (ends > word.start())].sum()))]
            for word in re.finditer(r'\S+', content)]


class TransformersCaptioner:
    """Captions from a local ``transformers`` image-text-to-text model
    (e.g. a downloaded Qwen2.5-VL folder), loaded from ``model_path``.

    Args:
        model_path (str): Local model folder.
        device (str): Where the model runs.
        max_new_tokens (int): Caption length cap.
    """

    def __init__(self, model_path: str, device: str = 'cpu',
                 max_new_tokens: int = 160) -> None:
        if not os.path.isdir(model_path):
            raise FileNotFoundError(f'model folder {model_path} not found')
        from transformers import AutoModelForImageTextToText, AutoProcessor
        self.processor = AutoProcessor.from_pretrained(
            model_path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(
            model_path, local_files_only=True).to(device).eval()
        self.device = device
        self.max_new_tokens = max_new_tokens

    def __call__(self, image: bytes, template: str) -> str:
        import io

        import torch
        from PIL import Image
        messages = [dict(role='user', content=[
            dict(type='image', image=Image.open(io.BytesIO(image)).convert(
                'RGB')),
            dict(type='text', text=PROMPT.format(template=template)),
        ])]
        inputs = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True,
            return_dict=True, return_tensors='pt').to(self.device)
        with torch.no_grad():
            output = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens)
        new_tokens = output[0, inputs['input_ids'].shape[1]:]
        return self.processor.decode(new_tokens, skip_special_tokens=True)

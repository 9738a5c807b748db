"""Stage 2 backends: multimodal LLMs that caption a person crop."""
import base64
import json
import os
import time
import urllib.error
import urllib.request
from typing import Optional

PROMPT = (
    'Describe the person in this image in one paragraph of 2-4 sentences '
    'for a person search engine: gender, hair, clothing with colours, '
    'shoes, bags and other carried objects. Say only what is visible. '
    'Follow the style of this example, replacing the bracketed parts with '
    'what the image shows: "{template}"')


class CaptionError(RuntimeError):
    """A captioning request failed for good (after its retries)."""


class OpenAIChatCaptioner:
    """Captions from an OpenAI-compatible chat-completions server (vLLM,
    SGLang, LMDeploy and most MLLM servers).

    Args:
        base_url (str): e.g. ``http://localhost:8000/v1``.
        model (str): Served model name, e.g. ``Qwen/Qwen2.5-VL-7B-Instruct``.
        api_key_env (str): Environment variable holding the API key (may
            be unset for local servers).
        timeout (float): Seconds per request.
        retries (int): Further attempts after a transient failure (HTTP 429
            or 5xx, connection error, timeout), waiting
            ``backoff * 2 ** attempt`` seconds between them.
        max_tokens (int): Caption length cap.
        temperature (float): Sampling temperature.
    """

    def __init__(self,
                 base_url: str,
                 model: str,
                 api_key_env: str = 'OPENAI_API_KEY',
                 timeout: float = 60.0,
                 retries: int = 3,
                 backoff: float = 1.0,
                 max_tokens: int = 160,
                 temperature: float = 0.7) -> None:
        self.url = base_url.rstrip('/') + '/chat/completions'
        self.model = model
        self.api_key = os.environ.get(api_key_env)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.temperature = temperature

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
        headers = {'Content-Type': 'application/json'}
        if self.api_key:
            headers['Authorization'] = f'Bearer {self.api_key}'
        return urllib.request.Request(self.url, json.dumps(body).encode(),
                                      headers)

    def __call__(self, image: bytes, template: str) -> str:
        """Caption PNG/JPEG ``image`` bytes guided by ``template``."""
        error: Optional[str] = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2**(attempt - 1))
            try:
                with urllib.request.urlopen(
                        self._request(image, template),
                        timeout=self.timeout) as response:
                    answer = json.load(response)
                return answer['choices'][0]['message']['content'] or ''
            except urllib.error.HTTPError as err:
                error = f'HTTP {err.code} from {self.url}'
                if err.code != 429 and err.code < 500:
                    break
            except (urllib.error.URLError, TimeoutError, OSError) as err:
                error = f'{type(err).__name__}: {err} ({self.url})'
            except (KeyError, IndexError, ValueError) as err:
                error = f'malformed answer from {self.url}: {err}'
                break
        raise CaptionError(error)


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

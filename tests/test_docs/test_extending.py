"""docs/extending.md's Python blocks run, in order, as one script."""
import os.path as osp
import re

from common import REPO_ROOT


def test_extension_examples_run(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    text = open(osp.join(REPO_ROOT, 'docs/extending.md')).read()
    blocks = re.findall(r'```python\n(.*?)```', text, re.S)
    assert len(blocks) == 5
    namespace = {'__name__': 'extending_md'}
    for block in blocks:
        exec(compile(block, 'docs/extending.md', 'exec'), namespace)
    # each worked example registered its part (the blocks assert that it
    # trained)
    for name in ('OcclusionScorer', 'QuantileMaskNeck',
                 'FrozenImageCLIPBackbone', 'CsvPersons'):
        assert name in namespace

"""Every reference in the repository points to something in it: each
citation of the specification ("method.md 3.2 step 7", "method.md 10 #7",
"method.md appendix B", quoted headings) finds its heading, step or row in
docs/method.md, and every file path the docs name exists."""
import glob
import os.path as osp
import re
import subprocess

import pytest
from common import REPO_ROOT

METHOD = osp.join(REPO_ROOT, 'docs', 'method.md')
# what follows "method.md" in a citation, up to the end of the clause
CITATION = re.compile(r'method\.md,?\s+((?:sections?\s+|appendix\s+|\d)'
                      r'[\w .#,-]*?)(?=[):;\]]|\.\s|\.$|$| and | -)',
                      re.M)
QUOTED = re.compile(r'method\.md(?:\)|\]\([^)]*\))?,\s+"([^"]+)"')
NUMBER = re.compile(r'(\d+(?:\.\d+)?)(?:\s*-\s*(\d+))?'
                    r'(?:\s+steps?\s+(\d+)(?:\s*-\s*(\d+))?)?'
                    r'(?:\s+#(\d+))?')
FILE_PATH = re.compile(r'`((?:tests|configs|tools|benchmarks|gadms|docs|'
                       r'requirements)/[\w/.-]+)(?:::\w+)?`')


def _tracked_text_files() -> list:
    """The repository's files (tracked, and new ones git does not
    ignore) of code and prose."""
    listed = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
        cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    return sorted({f for f in listed if f.endswith(('.py', '.md', '.sh'))
                   and f != 'tests/test_docs/test_references.py'
                   and osp.isfile(osp.join(REPO_ROOT, f))})


def _sections() -> dict:
    """docs/method.md's headings -> the text under each."""
    sections, current = {}, None
    with open(METHOD, encoding='utf-8') as f:
        for line in f:
            if line.startswith('#'):
                current = line.lstrip('#').strip()
                sections[current] = ''
            elif current:
                sections[current] += line
    return sections


SECTIONS = _sections()


def _section(number: str) -> str:
    """The text of the heading numbered ``number`` (a heading '3.2 ...' or
    its sub-sections for '3'), or None."""
    found = [text for heading, text in SECTIONS.items()
             if heading == number or heading.startswith(number + ' ')
             or heading.startswith(number + '.')]
    return '\n'.join(found) if found else None


def citations() -> list:
    """``(file, citation)`` of every specification citation."""
    found = []
    for path in _tracked_text_files():
        with open(osp.join(REPO_ROOT, path), encoding='utf-8') as f:
            text = f.read()
        found += [(path, m.group(1).strip()) for m in CITATION.finditer(text)]
        found += [(path, f'"{m.group(1)}"') for m in QUOTED.finditer(text)]
    return found


CITATIONS = citations()


def _resolves(citation: str) -> bool:
    if citation.startswith('"'):
        # a quoted heading, perhaps wrapped over comment lines, or its start
        words = ' '.join(re.sub(r'\n\s*#?', ' ', citation.strip('"')).split())
        return any(heading.startswith(words) for heading in SECTIONS)
    appendix = re.match(r'appendix\s+([A-Z])', citation, re.I)
    if appendix:
        return any(h.startswith(f'Appendix {appendix.group(1)}')
                   for h in SECTIONS)
    for match in NUMBER.finditer(citation):
        first, last, step, last_step, row = match.groups()
        numbers = [first] if not last else [
            str(n) for n in range(int(first), int(last) + 1)]
        for number in numbers:
            text = _section(number)
            if text is None:
                return False
            items = [k for k in (step, last_step, row) if k]
            if any(not re.search(rf'^{k}\. ', text, re.M) for k in items):
                return False
    return True


def test_citations_are_found():
    cited = {c for _, c in CITATIONS}
    assert {'3.2 step 7', '10 #7', 'appendix B'} <= cited
    assert len(CITATIONS) > 30


@pytest.mark.parametrize('path,citation', CITATIONS,
                         ids=[f'{p}: {c}' for p, c in CITATIONS])
def test_citation_resolves_in_docs_method(path, citation):
    assert _resolves(citation), f'{path} cites method.md {citation}'


def test_an_unknown_citation_does_not_resolve():
    assert not _resolves('11.3') and not _resolves('3.2 step 12')
    assert not _resolves('appendix Q') and not _resolves('"no such part"')


@pytest.mark.parametrize('doc', ['README.md'] + sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'docs', '*.md'))))
def test_files_the_docs_name_exist(doc):
    """Paths in backticks; docs/model_zoo.md names configs relative to
    configs/."""
    with open(osp.join(REPO_ROOT, doc), encoding='utf-8') as f:
        paths = FILE_PATH.findall(f.read())
    missing = [p for p in paths
               if not osp.exists(osp.join(REPO_ROOT, p))
               and not osp.exists(osp.join(REPO_ROOT, 'configs', p))]
    assert not missing, f'{doc} names {missing}'


def test_the_json_form_file_is_named_alike():
    """The WebPerson base config and reproduce.md name the released JSON
    file the same way."""
    with open(osp.join(REPO_ROOT, 'configs/_base_/datasets/webperson.py'),
              encoding='utf-8') as f:
        named = set(re.findall(r"ann_file='(\w+\.json)'", f.read()))
    with open(osp.join(REPO_ROOT, 'docs/reproduce.md'),
              encoding='utf-8') as f:
        page = set(re.findall(r"ann_file='(\w+\.json)'", f.read()))
    assert named and named <= page

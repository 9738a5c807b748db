"""Gallery folders as users leave them: link loops, links out of the
folder, two paths of one file, files that are not images; and queries that
say nothing or name no caption."""
import os
import os.path as osp

import cv2
import pytest
import torch
from common import REPO_ROOT, run_tool
from mmengine.config import Config

from gadms.apis import TextPersonInferencer, list_images
from gadms.datasets import SynthPerson
from gadms.datasets.transforms import ImageLoadError
from gadms.registry import MODELS

CONFIG = osp.join(REPO_ROOT,
                  'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
SYNTH = dict(num_identities=dict(train=1, val=1, test=2),
             images_per_identity=2)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    path = str(tmp_path_factory.mktemp('ckpt') / 'model.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def inferencer(checkpoint) -> TextPersonInferencer:
    return TextPersonInferencer(CONFIG, checkpoint)


def _gallery(root) -> tuple:
    """``root/gal`` with two images, a loop (``latest -> .``), an alias of
    an image, a link out of the folder, a folder named ``x.jpg`` holding an
    image, a text file named ``notes.jpg`` and a broken link."""
    dataset = SynthPerson(split='test', **SYNTH)
    gallery, outside = root / 'gal', root / 'outside'
    (gallery / 'x.jpg').mkdir(parents=True)
    outside.mkdir()
    for name in ('a.png', 'b.png', 'x.jpg/c.png'):
        cv2.imwrite(str(gallery / name), dataset.get_data_info(0)['img'])
    cv2.imwrite(str(outside / 'd.png'), dataset.get_data_info(1)['img'])
    os.symlink('.', gallery / 'latest')
    os.symlink('a.png', gallery / 'same_as_a.png')
    os.symlink(str(outside), gallery / 'elsewhere')
    os.symlink(str(outside / 'd.png'), gallery / 'e.png')
    os.symlink(str(root / 'missing.png'), gallery / 'gone.png')
    (gallery / 'notes.jpg').write_text('not an image')
    return str(gallery), str(outside)


def test_a_folder_is_walked_once_and_each_file_listed_once(tmp_path):
    gallery, outside = _gallery(tmp_path)
    images, skipped = list_images(gallery)
    assert [osp.relpath(p, gallery) for p in images] == [
        'a.png', 'b.png', 'notes.jpg', 'x.jpg/c.png']
    reasons = {osp.relpath(p, gallery): r for p, r in skipped}
    assert reasons == {
        'latest': f'a link to a folder already indexed ({gallery})',
        'elsewhere': f'a link to {outside}, outside the gallery folder '
        '(allow it with allow_outside_links / --allow-outside-links)',
        'e.png': f'a link to {outside}/d.png, outside the gallery folder '
        '(allow it with allow_outside_links / --allow-outside-links)',
        'same_as_a.png': f'the same file as {gallery}/a.png',
        'gone.png': 'a broken link',
    }
    images, skipped = list_images(gallery, allow_outside_links=True)
    # the linked file and the file in the linked folder are one file,
    # listed once (a folder's files are listed before its subfolders)
    assert [osp.relpath(p, gallery) for p in images] == [
        'a.png', 'b.png', 'e.png', 'notes.jpg', 'x.jpg/c.png']
    assert (f'{gallery}/elsewhere/d.png', f'the same file as {gallery}/e.png'
            ) in skipped


def test_index_skips_and_lists_what_it_cannot_index(inferencer, tmp_path,
                                                    caplog_mm):
    gallery, _ = _gallery(tmp_path)
    index = inferencer.build_index(gallery, progress=False)
    assert index.paths == ['a.png', 'b.png', 'x.jpg/c.png']
    assert len(index.features) == 3
    assert len(index.skipped) == 6
    reason = dict(index.skipped)[f'{gallery}/notes.jpg']
    assert 'notes.jpg cannot be decoded' in reason
    assert f'{gallery}: indexed 3 images, skipped 6 entries: ' in \
        caplog_mm.text
    # features of the kept images are the ones a list of them gives
    expected = inferencer.encode_images(
        [osp.join(gallery, p) for p in index.paths])
    torch.testing.assert_close(index.features.float(), expected, atol=1e-3,
                               rtol=0)
    with pytest.raises(ValueError, match=rf'^{gallery}: 5 entries: .*'
                       r'latest \(a link to a folder already indexed'):
        inferencer.build_index(gallery, progress=False, strict=True)
    for link in ('latest', 'same_as_a.png', 'elsewhere', 'e.png',
                 'gone.png'):
        os.remove(osp.join(gallery, link))
    with pytest.raises(ImageLoadError, match='notes.jpg cannot be decoded'):
        inferencer.build_index(gallery, progress=False, strict=True)


def test_retrieve_cli_lists_skips_and_checks_queries(checkpoint, tmp_path):
    gallery, _ = _gallery(tmp_path)

    def retrieve(*options):
        return run_tool('tools/retrieve.py', CONFIG, checkpoint, '--topk',
                        '2', *options)

    built = retrieve('--gallery', gallery, '--query', 'a man in red')
    assert built.returncode == 0, built.stderr[-2000:]
    assert 'skipped 6 entries of the gallery folder:' in built.stdout
    assert f'  {gallery}/latest: a link to a folder already indexed' in \
        built.stdout
    assert built.stdout.count('.png |') == 2  # two hits of 3 images
    strict = retrieve('--gallery', gallery, '--query', 'a man', '--strict')
    assert strict.returncode != 0 and '(strict)' in strict.stderr
    empty = retrieve('--gallery', gallery, '--query', '')
    assert empty.returncode != 0
    assert "--query '': the captions at positions [0] tokenise to nothing " \
        "(e.g. ''): a query needs at least one word" in empty.stderr
    # SynthPerson's test split of the config: 50 identities x 4 images x 2
    # captions; -1 used to take the last caption silently
    out_of_range = retrieve('--split', 'test', '--query-caption', '-1')
    assert out_of_range.returncode != 0
    assert ('--query-caption -1 is out of range: the test split has 400 '
            'captions (0 to 399)') in out_of_range.stderr
    # the old spelling still works, with a note
    old = retrieve('--gallery', 'test', '--query-caption', '-1')
    assert 'note: --gallery test is deprecated, use --split test' in \
        old.stderr and '--query-caption -1 is out of range' in old.stderr


def test_queries_that_say_nothing_are_refused(inferencer):
    with pytest.raises(ValueError, match=r'the captions at positions \[1, '
                       r"2\] tokenise to nothing \(e\.g\. '&nbsp;'\)"):
        inferencer.encode_texts(['a man', '&nbsp;', ' \ufeff '])

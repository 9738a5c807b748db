"""tools/serve.py's page in a real browser: headless Chromium (Debian's
chromium and chromium-driver, which .ci/run installs) driven by Selenium,
against the app serving a trained tiny CLIP-SDM and a SynthPerson gallery
whose people are known from the file names."""
import os
import os.path as osp
import shutil

import cv2
import pytest
from common import REPO_ROOT, run_tool

from gadms.apis import TextPersonInferencer
from gadms.apis.token_view import token_scorer
from gadms.datasets import SynthPerson
from gadms.serving.app import create_app
from gadms.serving.service import GalleryService
from gadms.testing.app_server import AppServer

CONFIG = osp.join(REPO_ROOT,
                  'configs/baselines/clip-sdm_tiny_1xb64_synthperson.py')
# a few epochs on a small SynthPerson: enough to find a described person
TRAIN_OPTIONS = ['train_cfg.max_epochs=4', 'train_cfg.val_interval=100',
                 'train_dataloader.num_workers=0',
                 'train_dataloader.persistent_workers=False',
                 'default_hooks.checkpoint.interval=4']
GALLERY = dict(num_identities=dict(train=200, val=50, test=50),
               images_per_identity=4, captions_per_image=2,
               image_size=(128, 48), noise_rate=0.0, seed=0)
# the people of the test split shown in the gallery (four images each)
PEOPLE = 8
CHROMIUM, DRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
WAIT = 60


def _browser():
    if not (osp.exists(CHROMIUM) and osp.exists(DRIVER)):
        message = ('headless Chromium is not installed: apt-get install '
                   'chromium chromium-driver (.ci/run does)')
        if os.environ.get('GADMS_REQUIRE_BROWSER'):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ('--headless=new', '--no-sandbox', '--disable-gpu',
                     '--disable-dev-shm-usage', '--window-size=1200,900'):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> str:
    work_dir = str(tmp_path_factory.mktemp('trained'))
    run_tool('tools/train.py', CONFIG, '--work-dir', work_dir,
             '--cfg-options', *TRAIN_OPTIONS)
    return osp.join(work_dir, 'epoch_4.pth')


@pytest.fixture(scope='module')
def gallery(tmp_path_factory) -> tuple:
    """A folder ``people/`` of the first test people's images, named
    ``<pid>_<n>.png``, a folder beside it, and their captions by pid."""
    root = tmp_path_factory.mktemp('browser')
    dataset = SynthPerson(split='test', **GALLERY)
    os.makedirs(root / 'people')
    first = dataset.get_data_info(0)['pid']
    captions, counts = {}, {}
    for position in range(len(dataset)):
        info = dataset.get_data_info(position)
        if info['pid'] >= first + PEOPLE:
            continue
        number = counts[info['pid']] = counts.get(info['pid'], -1) + 1
        cv2.imwrite(str(root / 'people' / f'{info["pid"]}_{number}.png'),
                    info['img'])
        captions.setdefault(info['pid'], list(info['captions']))
    shutil.copytree(root / 'people', root / 'elsewhere')
    return root, captions


def test_search_explain_and_a_refused_path_in_the_browser(trained, gallery,
                                                          tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait
    root, captions = gallery
    inferencer = TextPersonInferencer(CONFIG, trained)
    index = inferencer.build_index(str(root / 'people'), progress=False)
    service = GalleryService(inferencer, index,
                             token_scorer(inferencer.model, True))
    server = AppServer(create_app(service))
    browser = _browser()
    try:
        wait = WebDriverWait(browser, WAIT)
        browser.get(server.base)
        wait.until(ready.text_to_be_present_in_element(
            (By.ID, 'status'), f'{len(index)} images'))
        pid = sorted(captions)[3]
        caption = captions[pid][0]
        browser.find_element(By.ID, 'query').send_keys(caption)
        browser.find_element(By.ID, 'search').click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR,
                                                 '.hit')) == 10)
        hits = browser.find_elements(By.CSS_SELECTOR, '.hit')
        names = [hit.find_element(By.TAG_NAME, 'img').get_attribute('alt')
                 for hit in hits]
        # the described person is among the first five results
        assert any(name.startswith(f'{pid}_') for name in names[:5]), (
            caption, names)
        # the page shows what the API ranks
        expected = inferencer.search(caption, index, topk=10)[0]
        assert names == [index.paths[hit['index']] for hit in expected]

        hits[0].click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '#words span'))
        words = [span.text for span in browser.find_elements(
            By.CSS_SELECTOR, '#words span')]
        assert words == [text for text, _ in inferencer.tokenizer.words(
            inferencer.tokenizer([caption])[0])]
        browser.save_screenshot(str(tmp_path / 'serve.png'))

        browser.find_element(By.TAG_NAME, 'summary').click()
        browser.find_element(By.ID, 'folder').send_keys('../elsewhere')
        browser.find_element(By.ID, 'add-folder').click()
        wait.until(ready.text_to_be_present_in_element(
            (By.ID, 'error'), 'is outside the gallery folder'))
        assert len(service.index) == len(index)
    finally:
        browser.quit()
        server.close()
    screenshot = cv2.imread(str(tmp_path / 'serve.png'))
    assert screenshot is not None and screenshot.shape[1] >= 1000

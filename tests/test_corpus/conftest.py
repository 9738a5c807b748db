import pytest
from corpus_scenes import make_scenes


@pytest.fixture(scope='session')
def ray_local():
    """One local Ray instance for the whole test session (starting Ray
    takes seconds), with the driver bounded as the command line's is;
    Ray Data's progress bars off, so logs stay short."""
    import ray
    from ray.data import DataContext
    from gadms.corpus import CORPUS_RUNTIME_ENV
    from gadms.corpus.sharded import bound_driver_memory
    bound_driver_memory()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env=CORPUS_RUNTIME_ENV)
    DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope='session')
def scenes(tmp_path_factory) -> str:
    """The scene folder of ``corpus_scenes`` (written once per session)."""
    return make_scenes(tmp_path_factory.mktemp('scenes'))

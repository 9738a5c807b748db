import pytest


@pytest.fixture(scope='session')
def ray_local():
    """One local Ray instance for the whole test session (starting Ray
    takes seconds); Ray Data's progress bars off, so logs stay short."""
    import ray
    from ray.data import DataContext
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()

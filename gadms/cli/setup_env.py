import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every gadms module into the registries, MMEngine style.

    Configs do not need this (the registries import lazily from their
    ``locations``); scripts and tests that build modules outside the Runner
    call it once.

    Args:
        init_default_scope (bool): Also make ``'gadms'`` the default scope,
            so ``type='...'`` names resolve to gadms modules first.
    """
    import gadms.datasets  # noqa: F401,F403
    import gadms.engine  # noqa: F401,F403
    import gadms.evaluation  # noqa: F401,F403
    import gadms.models  # noqa: F401,F403

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('gadms'):
        DefaultScope.get_instance('gadms', scope_name='gadms')
    elif current.scope_name != 'gadms':
        warnings.warn(f'The current default scope "{current.scope_name}" is '
                      'not "gadms"; `register_all_modules` will force it to '
                      '"gadms".')
        name = f'gadms-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='gadms')

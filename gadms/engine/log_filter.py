"""What the Runner logs to the console and what only to the run's log
file."""
import logging


class FileOnlyFilter(logging.Filter):
    """Keep the Runner's once-per-run reports (the environment, the whole
    config, the hook order: hundreds of lines) and MMEngine's internal
    deprecation notices off the console; the log file's handler, which has
    no such filter, still writes them."""

    PREFIXES = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n',
                'Hooks will be executed in the following order',
                # MMEngine's own deprecation notices, logged by its
                # checkpoint hook on every run (nothing for a user to do)
                '"FileClient" will be deprecated in future',
                '"HardDiskBackend" is the alias of "LocalBackend"')

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)

"""gadms.testing.forked_tools: a tool forked from the preloaded server
behaves as ``python TOOL ARGS`` would (arguments, folder, environment,
output, exit status, exit handlers), and is killed past its time limit."""
import os
import textwrap

import pytest

from gadms.testing.forked_tools import ToolTimeout, run_forked_tool

SCRIPT = textwrap.dedent('''\
    import atexit, os, sys
    import helper  # next to the script: its folder is on sys.path
    atexit.register(lambda: print('exit handler ran', flush=True))
    print('argv', sys.argv[1:], 'cwd', os.getcwd(), 'name', __name__)
    print('env', os.environ.get('FORKED_TOOL_TEST'))
    print('to stderr', file=sys.stderr)
    if sys.argv[1] == 'fail':
        raise ValueError('the tool failed')
    if sys.argv[1] == 'hang':
        import time
        time.sleep(60)
    sys.exit(int(sys.argv[1]))
''')


@pytest.fixture
def tool(tmp_path):
    folder = tmp_path / 'tools'
    folder.mkdir()
    (folder / 'helper.py').write_text('')
    (folder / 'tool.py').write_text(SCRIPT)
    return str(folder / 'tool.py')


def _read(path) -> str:
    with open(path) as f:
        return f.read()


def test_a_forked_tool_runs_like_a_new_interpreter(tool, tmp_path,
                                                   monkeypatch):
    monkeypatch.setenv('FORKED_TOOL_TEST', 'seen')
    out, err = str(tmp_path / 'out'), str(tmp_path / 'err')
    with open(out, 'w') as f:
        f.write('earlier output\n')  # appended to, not replaced
    code = run_forked_tool([tool, '3', 'x y'], out, err, cwd=str(tmp_path))
    assert code == 3
    assert _read(out).splitlines() == [
        'earlier output',
        f"argv ['3', 'x y'] cwd {tmp_path} name __main__",
        'env seen', 'exit handler ran']
    assert _read(err) == 'to stderr\n'
    assert os.getcwd() != str(tmp_path)  # the caller's folder is its own
    # an environment of its own; stdout and stderr in one file
    log = str(tmp_path / 'log')
    assert run_forked_tool([tool, '0'], log, env=dict(
        os.environ, FORKED_TOOL_TEST='given')) == 0
    assert 'env given' in _read(log) and 'to stderr' in _read(log)


def test_a_failing_tool_reports_its_traceback_and_status_1(tool, tmp_path):
    log = str(tmp_path / 'log')
    assert run_forked_tool([tool, 'fail'], log) == 1
    text = _read(log)
    assert 'to stderr' in text and 'ValueError: the tool failed' in text
    assert 'exit handler ran' in text


def test_a_tool_past_its_time_limit_is_killed(tool, tmp_path):
    with pytest.raises(ToolTimeout, match='tool.py ran past 1 s'):
        run_forked_tool([tool, 'hang'], str(tmp_path / 'log'), timeout=1)

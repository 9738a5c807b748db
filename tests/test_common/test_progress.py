"""Progress output stays bounded when it does not go to a terminal."""
import io

from common import run_tool

from gadms.common.progress import Progress


class _Terminal(io.StringIO):

    def isatty(self) -> bool:
        return True


def test_plain_lines_are_bounded_and_end_at_the_total():
    out = io.StringIO()
    progress = Progress(1000, 'checking images', max_lines=10, file=out)
    for _ in range(1000):
        progress.update()
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert [line.split(' (')[0] for line in lines] == [
        f'checking images: {100 * k}/1000' for k in range(1, 11)]
    assert lines[-1].startswith('checking images: 1000/1000 (100%, ')


def test_batched_updates_and_a_logger():
    logged = []
    progress = Progress(7, 'test batches', max_lines=3, log=logged.append)
    for count in (2, 2, 3):
        progress.update(count)
    # 2/7 is under a third; 4/7 passes one third; 7/7 the rest at once
    assert [line.split(' (')[0] for line in logged] == [
        'test batches: 4/7', 'test batches: 7/7']


def test_a_terminal_gets_mmengines_bar():
    out = _Terminal()
    progress = Progress(500, 'x', file=out)
    for _ in range(500):
        progress.update()
    progress.close()
    assert progress._bar is not None
    assert '500/500' in out.getvalue()


def test_check_dataset_output_to_a_pipe_is_bounded(tmp_path):
    root = str(tmp_path / 'rstp')
    run_tool('tools/dataset_converters/synth_person_to_benchmark.py', root,
             '--layout', 'rstpreid', '--train-ids', '40', '--val-ids', '4',
             '--test-ids', '4', '--images-per-identity', '4', check=True)
    result = run_tool('tools/misc/check_dataset.py', 'rstpreid', root)
    assert result.returncode == 0, result.stdout[-2000:]
    progress = [line for line in result.stdout.splitlines()
                if line.startswith('checking images: ')]
    # 192 images, at most 10 lines (MMEngine's bar wrote one per image)
    assert len(progress) == 10 and '192/192' in progress[-1]
    assert len(result.stdout.splitlines()) < 60

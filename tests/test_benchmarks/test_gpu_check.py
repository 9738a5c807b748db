"""benchmarks/gpu_check.py in its tiny CPU mode, so the one-shot GPU check
cannot rot between the sessions that are lent a GPU."""
import json

from common import run_tool


def test_tiny_mode_measures_every_figure(tmp_path):
    out = tmp_path / 'check.json'
    result = run_tool('benchmarks/gpu_check.py', '--tiny', '--out', str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures['device'] == 'cpu' and figures['batch'] == 4
    for model in ('clip_sdm', 'gadms'):
        step = figures[model]
        assert 0 < step['step_s'] and 0 < step['first_step_s']
        assert abs(step['images_per_s'] * step['step_s'] - 4) < 1e-6
    # the ratio is reported, not judged: timings belong to the benchmark
    assert figures['step_ratio'] == figures['gadms']['step_s'] / \
        figures['clip_sdm']['step_s']
    for source in ('jpeg', 'parquet'):
        loader = figures[f'loader_{source}']
        assert loader['images_per_s'] > 0
        assert abs(loader['times_gadms_step'] -
                   loader['images_per_s'] /
                   figures['gadms']['images_per_s']) < 1e-9
    assert '| GA-DMS / CLIP-SDM |' in result.stdout
    assert f'wrote {out}' in result.stdout

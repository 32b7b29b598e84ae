"""lamp-sim: view writes a video and a contact sheet; eval-expert prints the success table; record-demos writes
expert episode files; eval-bundle evaluates a policy bundle with the robot's runtime (no torch), whatever the
number of workers."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import cv2
import pytest

from models.bundle import read_manifest, write_manifest
from models.episodes import iter_episodes
from sim import evaluation
from sim.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_view_writes_video_and_contact_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['view', '--task', 'push_button', '--seed', '1', '--out', str(tmp_path), '--image-size', '32']) == 0
    video, sheet = tmp_path / 'push_button_seed1.mp4', tmp_path / 'push_button_seed1.png'
    with av.open(str(video)) as container:                    # H.264 at people's size: each camera at 256 beside
        stream = container.streams.video[0]                   # the agent's own 32x32 front image, enlarged
        assert stream.codec_context.name == 'h264' and (stream.width, stream.height) == (3 * 256, 24 + 256)
        frames = sum(1 for _ in container.decode(stream))
    assert frames == 2 * 151                                  # a random and an expert episode, reset frames included
    image = cv2.imread(str(sheet))
    assert image.shape[1] == 8 * 3 * 128 and image.shape[0] == 2 * (24 + 256) // 2
    out = capsys.readouterr().out
    assert 'push_button expert: success=True' in out and 'instruction="push button"' in out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([sheet.name, video.name])     # no temp files left


def test_eval_expert_prints_a_success_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['eval-expert', '--task', 'turn_tap', '--episodes', '1', '--seed', '3', '--image-size', '16']) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith('| task | seeds | success | rate')
    assert table[2].startswith('| turn_tap | 3-3 | 1/1 | 100% |')


def test_bad_arguments_give_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['eval-expert', '--task', 'fold_laundry', '--episodes', '1']) == 2
    assert "unknown task 'fold_laundry'" in capsys.readouterr().err
    assert main(['eval-expert', '--task', 'turn_tap', '--episodes', '0']) == 2


def test_record_demos_writes_expert_episodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'demos'
    assert main(['record-demos', '--tasks', 'push_button', '--episodes', '1', '--out', str(out),
                 '--image-size', '32', '--after-success', '2', '--quiet']) == 0
    (episode_id, episode), = list(iter_episodes(out))
    assert episode_id == 'push_button_00000' and episode.success and episode.task == 'push_button'
    assert episode.image_front.shape[1:] == (32, 32, 3) and episode.image_wrist.shape == episode.image_front.shape
    t = episode.length
    assert episode.action.shape == (t - 1, 4) and episode.state.shape == (t, 4) and episode.reward.shape == (t,)
    assert t < 40                                                            # ended 2 steps after success
    assert 'recorded 1 episodes (1 successful)' in capsys.readouterr().out
    assert main(['record-demos', '--tasks', 'push_button', '--episodes', '1', '--out', str(out), '--quiet']) == 0
    printed = capsys.readouterr().out
    assert 'recorded 0 episodes' in printed and 'kept 1 already there' in printed


def test_record_demos_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'demos'
    assert main(['record-demos', '--tasks', 'all', 'fold_laundry', '--episodes', '1', '--out', str(out)]) == 2
    assert "unknown task 'fold_laundry'" in capsys.readouterr().err
    assert main(['record-demos', '--tasks', 'push_button', '--episodes', '0', '--out', str(out)]) == 2
    assert '--episodes must be >= 1' in capsys.readouterr().err
    assert not out.exists()                                                  # nothing written


def test_help_of_every_command() -> None:
    for args in ([], ['view'], ['eval-expert'], ['eval-bundle'], ['record-demos']):
        out = subprocess.run([sys.executable, '-m', 'sim.cli', *args, '--help'], capture_output=True, text=True,
                             cwd=REPO, check=True).stdout
        assert 'usage: lamp-sim' in out


# --- eval-bundle ---------------------------------------------------------------------------------------


def test_eval_bundle_sees_the_picture_the_ros_graph_gives_the_policy() -> None:
    """The sim arm's camera size (config/sim_arm.yaml) area-resized to the bundle's: 128 -> 64 is a 2x render."""
    import yaml
    params = yaml.safe_load((Path(__file__).parents[1] / 'config' / 'sim_arm.yaml').read_text())
    assert params['/**']['ros__parameters']['image_size'] == [evaluation.GRAPH_CAMERA_SIZE] * 2
    assert [evaluation.render_scale(size) for size in (32, 64, 128, 256)] == [4, 2, 1, 1]
# Workers are spawned processes: the worker stand-ins below are module-level so that they pickle by name,
# and this module imports no torch at the top (tests.tiny does), so a worker importing it stays torch-free.

BASE = evaluation.HELD_OUT_SEED_BASE


def worker_refusing_torch(job: evaluation.Job, report) -> None:
    """The real worker, failing if anything on its path imported torch."""
    evaluation.run_job(job, report)
    heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)
    if heavy:
        raise RuntimeError(f'the worker imported {heavy}')


def worker_killed_at_second_seed(job: evaluation.Job, report) -> None:
    """Dies (SIGKILL, as the OOM killer would) as it starts seed BASE + 1; other shares run normally."""
    if (job.pairs[0][1]) == BASE + 1:
        report(('start', *job.pairs[0]))
        os.kill(os.getpid(), signal.SIGKILL)
    evaluation.run_job(job, report)


@pytest.fixture(scope='module')
def bundle32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random bundle (tests.tiny), exported in a subprocess: torch/transformers (triton) loaded into a
    process that has rendered with MuJoCo's EGL (the view test above) crash it, both bring their own LLVM."""
    root = tmp_path_factory.mktemp('eval_bundle')
    code = f"""
from pathlib import Path
from tests.tiny import export_tiny, write_small_vocab
root = Path({str(root)!r})
export_tiny(root / 'bundle', write_small_vocab(root / 'vocab.txt'), image_size=32, model_version='tiny-test')
"""
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True, timeout=300)
    return root / 'bundle'


@pytest.fixture(scope='module')
def wrist_bundle32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As bundle32, with the wrist camera as a second image input."""
    root = tmp_path_factory.mktemp('eval_wrist_bundle')
    code = f"""
from pathlib import Path
from tests.tiny import export_tiny, write_small_vocab
root = Path({str(root)!r})
export_tiny(root / 'bundle', write_small_vocab(root / 'vocab.txt'), image_size=32, model_version='tiny-wrist',
            cameras=('front', 'wrist'))
"""
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True, timeout=300)
    return root / 'bundle'


def test_eval_bundle_feeds_a_wrist_camera_bundle_its_wrist_images(wrist_bundle32: Path) -> None:
    manifest = read_manifest(wrist_bundle32)
    assert manifest.cameras == ('front', 'wrist')
    (episode,) = evaluation.evaluate(wrist_bundle32, manifest, ['take_lid_off_saucepan'], 1, workers=1)
    assert episode.steps == evaluation.EPISODE_STEPS and not episode.success


def _edited_copy(bundle: Path, out: Path, **fields) -> Path:
    shutil.copytree(bundle, out)
    write_manifest(out, replace(read_manifest(out), **fields))
    return out


def test_eval_bundle_table_note_and_no_torch(bundle32: Path, tmp_path: Path) -> None:
    """In a fresh interpreter (pytest has torch loaded): neither the command nor its worker imports torch;
    a bundle trained for another task is evaluated, with one note line; the table has a mean row."""
    other = _edited_copy(bundle32, tmp_path / 'bundle', tasks=('turn_tap',))
    code = f"""
import sys
from sim import evaluation
from tests.test_sim_cli import worker_refusing_torch
evaluation.run_job = worker_refusing_torch
from sim.cli import main
rc = main(['eval-bundle', {str(other)!r}, '--task', 'push_button', '--episodes', '1', '--workers', '1'])
assert 'torch' not in sys.modules, 'the command imported torch'
sys.exit(rc)
"""
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={**os.environ, 'MUJOCO_GL': 'egl'})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["note: bundle trained for ['turn_tap']; evaluating push_button anyway"]
    out = result.stdout.splitlines()
    assert out[0] == (f"tiny-test ({other}): 1 held-out scene(s) per task, seeds {BASE}-{BASE}, "
                      "instruction: each task's own")
    assert out[2] == '| task | episodes | success | rate | 95% CI (Wilson) | steps to success (mean) |'
    assert out[4] == '| push_button | 1 | 0/1 | 0% | 0-79% | - |'            # random weights never press it
    assert out[5] == '| **mean** | 1 | 0/1 | 0% | 0-79% | - |' and len(out) == 6


def test_eval_bundle_results_do_not_depend_on_the_worker_count(bundle32: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    one = evaluation.evaluate(bundle32, read_manifest(bundle32), ['push_button'], 2, workers=1,
                              instruction='press the red button')
    assert main(['eval-bundle', str(bundle32), '--task', 'push_button', '--episodes', '2', '--workers', '2',
                 '--json', '--instruction', 'press the red button']) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(e.task, e.seed, e.success, e.steps, e.total_reward) for e in one] == \
        [(e['task'], e['seed'], e['success'], e['steps'], e['total_reward']) for e in report['episodes']]
    assert [e.seed for e in one] == [BASE, BASE + 1] and one[0].steps == evaluation.EPISODE_STEPS
    assert one[0].total_reward != one[1].total_reward             # two different scenes, not one repeated
    assert report['model_version'] == 'tiny-test' and report['instruction'] == 'press the red button'
    assert report['tasks']['push_button'] == {'successes': 0, 'episodes': 2, 'rate': 0.0, 'ci_low': 0.0,
                                              'ci_high': pytest.approx(0.6576, abs=1e-4),
                                              'mean_steps_to_success': None, 'instruction': 'press the red button'}
    assert report['mean']['episodes'] == 2 and report['seed_base'] == BASE


def test_eval_bundle_reports_a_dead_worker(bundle32: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(evaluation, 'run_job', worker_killed_at_second_seed)
    assert main(['eval-bundle', str(bundle32), '--task', 'push_button', '--episodes', '2', '--workers', '2']) == 1
    captured = capsys.readouterr()
    assert captured.out == ''
    (line,) = captured.err.splitlines()
    assert line.startswith('lamp-sim: error: worker 2 (pid ')
    assert line.endswith(f'share: push_button seed {BASE + 1}) was killed by SIGKILL while running '
                         f'push_button seed {BASE + 1}')


def test_eval_bundle_refuses_bad_input(bundle32: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wants_orientation = _edited_copy(bundle32, tmp_path / 'quat',
                                     state_keys=('ee_x', 'ee_y', 'ee_z', 'ee_qw'))
    cases = {(str(tmp_path),): 'no manifest.json (incomplete or not a policy bundle)',
             (str(bundle32), '--task', 'fold_laundry'): "unknown task 'fold_laundry'; choose one of push_button, "
                                                        'turn_tap, close_microwave, pick_up_cup, '
                                                        'take_lid_off_saucepan or all',
             (str(wants_orientation),): "state key 'ee_qw' is not provided by the sim",
             (str(bundle32), '--episodes', '0'): '--episodes must be >= 1',
             (str(bundle32), '--instruction', ' '): 'instruction is empty'}
    for args, message in cases.items():
        assert main(['eval-bundle', *args]) == 2, args
        captured = capsys.readouterr()
        assert captured.out == '' and len(captured.err.splitlines()) == 1, captured.err
        assert captured.err.startswith('lamp-sim: error: ') and message in captured.err


def test_eval_bundle_statistics() -> None:
    assert evaluation.wilson_interval(0, 2) == pytest.approx((0.0, 0.6576), abs=1e-4)
    low, high = evaluation.wilson_interval(5, 10)
    assert low == pytest.approx(1 - high) and (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert evaluation.wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    episodes = [evaluation.Episode('push_button', BASE, 'push button', True, 20, 1.0),
                evaluation.Episode('push_button', BASE + 1, 'push button', False, 150, 0.5),
                evaluation.Episode('turn_tap', BASE, 'turn tap', True, 40, 1.0),
                evaluation.Episode('turn_tap', BASE + 1, 'turn tap', True, 60, 1.0)]
    rows = evaluation.summarize(episodes, ['push_button', 'turn_tap'])
    assert [(r.successes, r.episodes, r.mean_steps_to_success) for r in rows] == [(1, 2, 20.0), (2, 2, 50.0)]
    table = evaluation.format_table(rows).splitlines()
    assert table[2] == '| push_button | 2 | 1/2 | 50% | 9-91% | 20.0 |'
    assert table[4] == '| **mean** | 4 | 3/4 | 75% | 30-95% | 35.0 |'
    assert evaluation.split([('t', s) for s in range(5)], 2) == [(('t', 0), ('t', 1)), (('t', 2), ('t', 3), ('t', 4))]
    assert evaluation.describe([('a', 1), ('a', 2), ('b', 7)]) == 'a seeds 1-2, b seed 7'

"""lamp-sim: view writes a video and a contact sheet; eval-expert prints the success table."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from sim.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_view_writes_video_and_contact_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['view', '--task', 'push_button', '--seed', '1', '--out', str(tmp_path), '--image-size', '32']) == 0
    video, sheet = tmp_path / 'push_button_seed1.mp4', tmp_path / 'push_button_seed1.png'
    capture = cv2.VideoCapture(str(video))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert frames == 2 * 151                                  # a random and an expert episode, reset frames included
    image = cv2.imread(str(sheet))
    assert image.shape[1] == 8 * 2 * 32 and image.shape[0] == 2 * (14 + 32)
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


def test_help_of_every_command() -> None:
    for args in ([], ['view'], ['eval-expert']):
        out = subprocess.run([sys.executable, '-m', 'sim.cli', *args, '--help'], capture_output=True, text=True,
                             cwd=REPO, check=True).stdout
        assert 'usage: lamp-sim' in out

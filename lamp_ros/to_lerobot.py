"""`lamp-ros to-lerobot`: episode files (.npz, from `lamp-ros record` or `lamp-sim record-demos`) to a
LeRobotDataset v3 that LeRobot's tools train and visualize from (layout: models/lerobot_dataset.py).

  lamp-ros to-lerobot demos/ --out demos_lerobot/           every episode of demos/, by name
  lamp-ros to-lerobot demos/ --out ds/ --fps 10              the rate, where the files do not say it

Running it again on the same --out adds only the episodes it has not converted yet (by episode id), so it can
follow a directory a recorder is still filling. Files it cannot read, and episodes without actions, are left out
with one line each.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from models.episodes import EpisodeSkipped, iter_episodes


def converted_ids(writer) -> set[str]:
    return {json.loads(row['lamp_meta']).get('episode_id', '') for row in writer.episodes}


def fps_of(meta: str | None, default: float) -> float:
    rate = json.loads(meta).get('control_rate_hz') if meta else None
    return float(rate) if rate else default


def convert(episodes: Path, out: Path, fps: float | None) -> tuple[int, int]:
    """(episodes added, episodes left out)."""
    from models.lerobot_dataset import DatasetMismatch, LeRobotWriter
    writer, added, left_out = None, 0, 0
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter('always', EpisodeSkipped)
        for episode_id, episode in iter_episodes(episodes):
            if writer is None:
                writer = LeRobotWriter(out, round(fps or fps_of(episode.meta, 10.0)))
                done = converted_ids(writer)
            if episode_id in done:
                continue
            try:
                writer.add(episode, extra={'episode_id': episode_id})
                added += 1
            except DatasetMismatch as e:
                print(f'{episode_id}: left out: {e}', file=sys.stderr)
                left_out += 1
    for w in skipped:
        print(w.message, file=sys.stderr)
    return added, left_out + len(skipped)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='lamp-ros to-lerobot', description=__doc__.split('\n\n')[0],
                                epilog=__doc__.split('\n\n', 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('episodes', type=Path, help='directory of episode files (*.npz)')
    p.add_argument('--out', type=Path, required=True, help='the LeRobot dataset directory (created or continued)')
    p.add_argument('--fps', type=float, default=None,
                   help="frames per second of the dataset (default: the recorder's control_rate_hz, else 10)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        added, left_out = convert(args.episodes.expanduser(), args.out.expanduser(), args.fps)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'lamp-ros to-lerobot: {e}') from None
    except ModuleNotFoundError as e:
        raise SystemExit(f"lamp-ros to-lerobot needs '{e.name}' (pyarrow and av: pip install -r "
                         f"requirements-robot.txt)") from None
    print(f'{args.out}: {added} episodes added' + (f', {left_out} left out (see above)' if left_out else ''))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

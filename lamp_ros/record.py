"""`lamp-ros record`: save every episode the graph runs (teleoperated or the policy's) to disk.

  lamp-ros record --out demos/                 one episode file (.npz) per episode
  lamp-ros record --out demos/ --mcap          and a ROS 2 bag (rosbag2 directory, MCAP) of the episode's topics
  lamp-ros record --out ds/ --format lerobot   a LeRobotDataset v3 instead (parquet + H.264 videos, meta/), one
                                               episode appended as each ends (models/lerobot_dataset.py)

An episode is what the episode node runs: from episode/status 'running' until it stops (step limit, success,
the operator's label, episode/stop or reset; the console starts and stops them). The files are
models.episodes files (images, states, actions, intervention flags, rewards, instruction, success, and a
JSON `meta`), which `lamp-models finetune-reward --episodes DIR` and the learner read; docs/recording.md
documents the layout. A label given after an episode stopped rewrites its file (or its dataset rows). Ctrl-C
saves the episode in progress, marked incomplete. `lamp-ros to-lerobot` converts episode files recorded before.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rclpy.node import Node
from rclpy.serialization import deserialize_message

from lamp_ros import contract as c
from lamp_ros.core.episode import parse_status
from lamp_ros.core.images import ImageRejected
from lamp_ros.core.json_text import json_object
from lamp_ros.core.recording import Aligned, EpisodeRecording
from lamp_ros.paths import config_file
from lamp_ros.ros.convert import applied_action, gripper_opening, image_array, pose_arrays, to_sec
from lamp_ros.ros.interfaces import message_class, profile
from lamp_ros.ros.mcap_bag import BagMessage, write_bag
from lamp_ros.ros.node_process import declare, run_node
from models.episodes import Episode, save_episode

FORMAT = 'lamp_ros.recording'
FORMAT_VERSION = 2                 # 2: one row per applied action (1: one row per camera frame)
# recorded into the episode file (and the bag) ...
EPISODE_TOPICS = (c.CAMERA_IMAGE, c.EE_POSE, c.GRIPPER_STATE, c.APPLIED_ACTION, c.REWARD, c.EPISODE_STATUS,
                  c.INSTRUCTION, c.POLICY_STATUS)
# ... and these into the bag only
BAG_ONLY_TOPICS = (c.POLICY_ACTION, c.TELEOP_ACTION, c.EE_TWIST_CMD, c.EPISODE_EVENT, c.EPISODE_LABEL,
                   c.SAFETY_STATUS, c.ESTOP, c.CONTROL_MODE, c.LEARNER_STATUS, c.TELEOP_STATUS)
NO_EPISODE_WARNING_S = 5.0


class RecorderNode(Node):
    def __init__(self, out_dir: Path, mcap: bool, dataset_format: str = 'npz') -> None:
        super().__init__('recorder')
        self.out_dir, self.mcap = Path(out_dir), mcap
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.control_rate_hz = declare(self, 'control_rate_hz', c.DEFAULT_CONTROL_RATE_HZ, 'Control rate, Hz (meta).')
        self.dataset = None if dataset_format == 'npz' else LeRobotEpisodes(self.out_dir, self.control_rate_hz)
        self.action_scale_m = declare(self, 'action_scale_m', c.ACTION_SCALE_M,
                                      'Metres per control step for |action| = 1 (meta).')
        self.session = time.strftime('%Y%m%d-%H%M%S')
        self.current: EpisodeRecording | None = None
        self.last_finished: tuple[str, EpisodeRecording, dict[str, Any]] | None = None   # (id, data, status)
        self.status_seen = False
        self.instruction = ''
        self.policy_status: dict[str, Any] = {}
        self._count = 0
        self._to_save: list[tuple[EpisodeRecording, dict[str, Any], bool]] = []
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix='recorder-save')
        self._handlers: dict[str, Callable[[Any], None]] = {
            c.CAMERA_IMAGE.name: self._on_image, c.EE_POSE.name: self._on_pose,
            c.GRIPPER_STATE.name: self._on_gripper, c.APPLIED_ACTION.name: self._on_applied,
            c.REWARD.name: self._on_reward, c.EPISODE_STATUS.name: self._on_episode_status,
            c.INSTRUCTION.name: self._on_instruction, c.POLICY_STATUS.name: self._on_policy_status}
        topics = EPISODE_TOPICS + (BAG_ONLY_TOPICS if mcap else ())
        self._classes = {topic.name: message_class(topic) for topic in topics}
        for topic in topics:
            self.create_subscription(self._classes[topic.name], topic.name,
                                     lambda data, t=topic: self._on_raw(t, data), profile(topic), raw=True)
        self.create_timer(NO_EPISODE_WARNING_S, self._warn_without_episodes)
        self.get_logger().info(f'recording episodes to {self.out_dir}' + (' (+ MCAP bags)' if mcap else '') +
                               ': start and stop them with `lamp-ros console` or the episode/* services')

    def _full_name(self, topic: str) -> str:
        return self.get_namespace().rstrip('/') + '/' + topic

    # --- messages ------------------------------------------------------------------------------------
    def _on_raw(self, topic: c.Topic, data: bytes) -> None:
        received_ns = self.get_clock().now().nanoseconds
        msg_type = self._classes[topic.name]
        msg = deserialize_message(data, msg_type)
        before = self.current
        handler = self._handlers.get(topic.name)
        if handler is not None:
            handler(msg)
        if self.mcap:
            header = getattr(msg, 'header', None)
            stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec if header is not None else received_ns
            bag_message = BagMessage(self._full_name(topic.name), msg_type, bytes(data), received_ns,
                                     stamp_ns or received_ns)
            for rec in {id(r): r for r in (before, self.current) if r is not None}.values():
                rec.bag.append(bag_message)
        self._save_finished()

    def _on_image(self, msg: Any) -> None:
        if self.current is None:
            return
        try:
            rgb = image_array(msg)
        except ImageRejected as e:
            self.get_logger().error(f'camera frame not recorded: {e}', throttle_duration_sec=5.0)
            return
        problem = self.current.add_frame(to_sec(msg.header.stamp), rgb)
        if problem:
            self.get_logger().error(f'episode {self.current.number}: {problem}', throttle_duration_sec=5.0)

    def _on_pose(self, msg: Any) -> None:
        if self.current is not None:
            self.current.add_pose(to_sec(msg.header.stamp), *pose_arrays(msg))

    def _on_gripper(self, msg: Any) -> None:
        if self.current is None:
            return
        try:
            self.current.add_gripper(to_sec(msg.header.stamp), gripper_opening(msg))
        except ValueError as e:
            self.get_logger().error(f'gripper state not recorded: {e}', throttle_duration_sec=5.0)

    def _on_applied(self, msg: Any) -> None:
        if self.current is None:
            return
        try:
            action, intervention = applied_action(msg)
        except ValueError as e:
            self.get_logger().error(f'applied action not recorded: {e}', throttle_duration_sec=5.0)
            return
        self.current.add_action(to_sec(msg.header.stamp), action, intervention)

    def _on_reward(self, msg: Any) -> None:
        if self.current is not None:
            self.current.add_reward(to_sec(msg.header.stamp), msg.vector.x)

    def _on_instruction(self, msg: Any) -> None:
        self.instruction = msg.data.strip()

    def _on_policy_status(self, msg: Any) -> None:
        self.policy_status = self._json_status(c.POLICY_STATUS, msg.data)

    def _json_status(self, topic: c.Topic, text: str,
                     parse: Callable[[str], dict[str, Any]] | None = None) -> dict[str, Any]:
        """A malformed status is logged and read as empty (one bad message must not stop the recording).
        `parse`: the topic's own reader (default: any JSON object)."""
        try:
            return (parse or json_object)(text)
        except ValueError as e:
            self.get_logger().error(f'{topic.name} ignored: {e}', throttle_duration_sec=5.0)
            return {}

    def _on_episode_status(self, msg: Any) -> None:
        status = self._json_status(c.EPISODE_STATUS, msg.data, parse_status)
        if not status:
            return                                  # malformed (logged): the episode goes on as it was
        number, state = status.get('episode'), status.get('state')
        first, self.status_seen = not self.status_seen, True
        if first:
            self.get_logger().info(f'episode node found: episode {number} {state}')
        rec = self.current
        if rec is not None and (state != 'running' or number != rec.number):
            self._finish(rec, status if number == rec.number else {'stop_reason': 'restarted'}, complete=True)
        if state == 'running' and (rec is None or number != rec.number):
            self._start_recording(int(number), status, first)
        self._maybe_relabel(status)

    def _start_recording(self, number: int, status: dict[str, Any], first: bool) -> None:
        """Record a running episode from now on, unless the recorder has only just joined it (a part of an
        episode is not saved as if it were one)."""
        if first:
            self.get_logger().warning(f'episode {number} was already running when the recorder started: '
                                      f'recording begins with the next episode')
            return
        self.current = EpisodeRecording(number, status.get('instruction') or self.instruction, time.time())
        self.get_logger().info(f"recording episode {number}: '{self.current.instruction}'")

    def _maybe_relabel(self, status: dict[str, Any]) -> None:
        """A label given after the episode stopped: write its file again with the new verdict."""
        if self.last_finished is None or status.get('state') != 'stopped':
            return
        episode_id, rec, before = self.last_finished
        if status.get('episode') != rec.number or \
                (status.get('success'), status.get('label')) == (before.get('success'), before.get('label')):
            return
        self.last_finished = (episode_id, rec, status)
        self._writer.submit(self._write, episode_id, rec, status, True, False).add_done_callback(self._check_saved)
        self.get_logger().info(f"episode {rec.number} relabelled ({status.get('label')}): rewriting {episode_id}")

    def _finish(self, rec: EpisodeRecording, status: dict[str, Any], complete: bool) -> None:
        self.current = None
        self._to_save.append((rec, status, complete))

    def _save_finished(self) -> None:
        while self._to_save:
            rec, status, complete = self._to_save.pop(0)
            if not rec.frames:
                self.get_logger().error(f'episode {rec.number} has no camera frames: nothing to save '
                                        f'(is camera/image_raw published?)')
                continue
            self._count += 1
            episode_id = f'rec-{self.session}-{self._count:05d}'
            self.last_finished = (episode_id, rec, status)
            self._writer.submit(self._write, episode_id, rec, status, complete, True).add_done_callback(
                self._check_saved)

    def _check_saved(self, future: Future) -> None:
        error = future.exception()
        if error is not None:
            self.get_logger().error(f'saving an episode failed: {error!r}')

    # --- writing (in the writer thread) --------------------------------------------------------------
    def _write(self, episode_id: str, rec: EpisodeRecording, status: dict[str, Any], complete: bool,
               first: bool) -> None:
        """The episode's file (or dataset rows) and, the first time, its bag; again after a relabel."""
        instruction = rec.instruction or status.get('instruction') or self.instruction
        if not instruction:
            self.get_logger().error(f'episode {rec.number} not saved: it has no instruction (publish one, e.g. with '
                                    f'the console)')
            return
        steps = rec.aligned()
        bag_file = self._bag_file(episode_id, rec)
        meta = self._meta(rec, steps, status, complete, bag_file)
        episode = _episode(rec, steps, instruction, bool(status.get('success', False)), meta)
        if self.dataset is None:
            name = save_episode(self.out_dir / f'{episode_id}.npz', episode).name
        else:
            name = f'dataset episode {self.dataset.save(episode_id, episode)}'
        if bag_file and first:
            write_bag(self.out_dir / bag_file, rec.bag)
        self.get_logger().info(_saved_line(name, meta, episode.success))

    def _bag_file(self, episode_id: str, rec: EpisodeRecording) -> str:
        """Where the episode's rosbag2 goes, relative to the output directory ('' for none): beside the .npz
        files, or under bags/ of a dataset."""
        if not (self.mcap and rec.bag):
            return ''
        return episode_id if self.dataset is None else f'bags/{episode_id}'

    def _meta(self, rec: EpisodeRecording, steps: Aligned, status: dict[str, Any], complete: bool,
              bag_file: str) -> dict[str, Any]:
        """The episode file's meta: where, when and how it was recorded, and what the episode node counted."""
        return {
            'format': FORMAT, 'version': FORMAT_VERSION, 'episode': rec.number, 'session': self.session,
            'complete': complete, 'label': status.get('label', ''), 'success_source': status.get('success_source', ''),
            'stop_reason': status.get('stop_reason', '' if complete else 'recorder stopped'),
            'steps': len(steps.action), 'interventions': int(steps.intervention.sum()),
            'episode_node_steps': status.get('step'), 'episode_node_interventions': status.get('interventions'),
            'actions_before_first_frame': steps.before_first_frame, 'frames_recorded': len(rec.frames),
            'frames_rejected': rec.frames_rejected,
            'state_keys': list(c.STATE_KEYS), 'action_keys': list(c.ACTION_KEYS),
            'control_rate_hz': self.control_rate_hz, 'action_scale_m': self.action_scale_m,
            'model_version': self.policy_status.get('model_version', ''),
            'started': _iso(rec.started_wall), 'first_stamp': rec.frame_stamps[0], 'last_stamp': rec.frame_stamps[-1],
            'mcap': bag_file}

    def _warn_without_episodes(self) -> None:
        if not self.status_seen:
            self.get_logger().warning('no episode/status yet: is the episode node running? Episodes are recorded '
                                      'from episode start to stop only', throttle_duration_sec=60.0)

    def on_shutdown(self) -> None:
        """Save the episode in progress (marked incomplete) and wait for the files."""
        if self.current is not None:
            self._finish(self.current, {}, complete=False)
            self._save_finished()
        self._writer.shutdown(wait=True)


class LeRobotEpisodes:
    """--format lerobot: each finished episode appended to the LeRobotDataset at the output directory; a relabel
    rewrites the same episode's rows."""

    def __init__(self, root: Path, fps: float) -> None:
        from models.lerobot_dataset import LeRobotWriter          # pyarrow and PyAV, only when asked for
        self.writer = LeRobotWriter(root, fps)
        self.index: dict[str, int] = {}

    def save(self, episode_id: str, episode: Episode) -> int:
        index = self.writer.add(episode, extra={'episode_id': episode_id}, replace=self.index.get(episode_id))
        self.index[episode_id] = index
        return index


def _saved_line(name: str, meta: dict[str, Any], success: bool) -> str:
    """The log line of a saved episode: what was saved, how long, who drove, how it ended."""
    label = f", label {meta['label']}" if meta['label'] else ''
    return (f"saved {name}: episode {meta['episode']}, {meta['steps']} steps, {meta['interventions']} intervention "
            f"steps, success={success}{label}" + (f" + {meta['mcap']}" if meta['mcap'] else '')
            + ('' if meta['complete'] else ' (incomplete)'))


def _episode(rec: EpisodeRecording, steps: Aligned, instruction: str, success: bool, meta: dict) -> Episode:
    """The episode file's arrays: the frames the steps were taken at, the state and reward at those frames."""
    frames = steps.frame_index
    state, reward = rec.states(), rec.reward_per_frame()
    return Episode(image_front=np.stack(rec.frames)[frames], instruction=instruction, success=success,
                   state=None if state is None else state[frames], action=steps.action,
                   reward=None if reward is None else reward[frames], intervention=steps.intervention,
                   meta=json.dumps(meta))


def _iso(wall: float) -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%S%z', time.localtime(wall))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='lamp-ros record', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', type=Path, required=True, help='directory for the episode files (created if missing)')
    p.add_argument('--mcap', action='store_true',
                   help='also write each episode as a ROS 2 bag (<id>/: MCAP + metadata.yaml, as ros2 bag reads it)')
    p.add_argument('--format', choices=('npz', 'lerobot'), default='npz', dest='dataset_format',
                   help='npz: one episode file each (default; what the learner and finetune-reward read); lerobot: '
                        'a LeRobotDataset v3 in --out (parquet + H.264 videos + meta/)')
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    args = parser().parse_args(argv[:split])
    out = args.out.expanduser()
    if out.exists() and not out.is_dir():
        raise SystemExit(f'--out {out} is a file, not a directory')
    extra = argv[split + 1:]
    ros = ['lamp-ros-record', '--ros-args', '--params-file', str(config_file('common.yaml')), *extra]
    return run_node(lambda: RecorderNode(out, args.mcap, args.dataset_format), ros)


if __name__ == '__main__':
    raise SystemExit(main())

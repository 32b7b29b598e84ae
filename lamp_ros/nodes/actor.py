"""actor node: the robot side of online finetuning. It records each control step of a running episode
(the image the policy saw, robot state, the action the safety layer applied, intervention flag), pairs it
with the reward of the next frame, and sends chunks of transitions to the learner over the pyzmq link
(lamp_ros.link). With `cameras` [front, wrist] (what a wrist-camera policy sees) each step also carries the
wrist image of that moment (camera/wrist/image_raw). Nothing is lost: chunks are on disk before they are sent and until the learner
acknowledges them; a learner that is down gets the backlog when it returns. Bundles the learner pushes are
offered to the policy node on policy/bundle. learner/status reports the link.

With hold_without_learner the arm holds still (control/mode 'hold') while the learner is unreachable;
otherwise the robot keeps acting with its current policy and buffers.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped, Vector3Stamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.core.episode import parse_status
from lamp_ros.core.images import ImageRejected
from lamp_ros.core.observation import StateHistory, state_vector
from lamp_ros.core.transitions import TransitionAssembler
from lamp_ros.link import keys as curve_keys
from lamp_ros.link.robot_client import ClientConfig, LinkClient
from lamp_ros.paths import data_dir
from lamp_ros.ros.convert import applied_action, gripper_opening, image_array, pose_arrays, to_sec
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.fault_reporting import node_fault_log
from lamp_ros.ros.interfaces import profile
from lamp_ros.ros.node_process import BadParameter, declare, run_node


class ActorNode(Node):
    def __init__(self) -> None:
        super().__init__('actor')
        robot_id = declare(self, 'robot_id', 'robot', 'Name of this robot at the learner.')
        endpoint = declare(self, 'learner', 'tcp://127.0.0.1:5555', 'The learner to send transitions to.')
        home = data_dir() / 'actor' / robot_id
        outbox = declare(self, 'outbox_dir', str(home / 'outbox'), 'Unacknowledged transitions wait here.')
        bundles = declare(self, 'bundle_dir', str(home / 'bundles'), 'Bundles pushed by the learner land here.')
        robot_key = declare(self, 'robot_key', '', 'CurveZMQ: this robot\'s secret key file (empty: no encryption).')
        learner_key = declare(self, 'learner_public_key', '', "CurveZMQ: the learner's public key file.")
        chunk_steps = declare(self, 'chunk_steps', 10, 'Control steps per chunk sent to the learner.')
        cameras = tuple(declare(self, 'cameras', ['front'],
                                "The images each step carries, front first (the learner's agent must see the "
                                'same; the finetune graph sets them from the bundle).'))
        if not cameras or cameras[0] != 'front' or len(set(cameras)) != len(cameras) or \
                any(cam not in c.CAMERA_TOPICS for cam in cameras):
            raise BadParameter(f'cameras must be distinct names of {sorted(c.CAMERA_TOPICS)}, front '
                             f'first; got {list(cameras)}')
        reward_source = declare(self, 'reward_source', '',
                                "What this robot's rewards come from (task, r3m, clip, success), announced to the "
                                'learner, which refuses a robot whose source differs from its run\'s ("": not '
                                "said); 'success': the learner rewards the episode's success, steps wait for none.")
        reward_timeout = declare(self, 'reward_timeout_s', 2.0,
                                 'A step whose reward has not arrived after this long is sent with NaN (counted).')
        self.hold_without_learner = declare(self, 'hold_without_learner', False,
                                            "Hold the arm (control/mode 'hold') while the learner is unreachable.")
        self.fsync = declare(self, 'fsync', False, 'Outbox survives power cuts too (slower).')
        self.final_frame_wait_s = declare(self, 'final_frame_wait_s', 1.0,
                                          'After a stop, wait up to this long for the final frame o_T and its '
                                          'reward before the episode is sent.')
        self._pending_finish: dict | None = None
        self._finish_deadline = 0.0

        self.faults = node_fault_log(self, 'input refused')
        self.assembler = TransitionAssembler(robot_id, chunk_steps, reward_timeout,
                                             rewards_from_success=reward_source == 'success')
        self.robot = StateHistory()
        self.image: np.ndarray | None = None
        self.image_stamp = float('nan')
        self.more_images: dict[str, np.ndarray] = {}       # the further cameras' latest images
        self.more_cameras = cameras[1:]
        self.instruction = ''
        self.episode_status: dict = {}
        self._finished: dict[int, tuple[str, str]] = {}      # episode number -> (episode key, label sent)
        self.bundle_version = ''
        self.steps_sent = 0

        keys = curve_keys.load(Path(robot_key)) if robot_key else None
        server_key = curve_keys.load(Path(learner_key)).public if learner_key else None
        self.link = LinkClient(ClientConfig(endpoint=endpoint, robot_id=robot_id, outbox_dir=Path(outbox),
                                            bundle_dir=Path(bundles), keys=keys, server_public_key=server_key,
                                            fsync=self.fsync, reward_source=reward_source, cameras=cameras),
                               on_bundle=self._on_bundle)
        self.bundle_pub = self.create_publisher(String, c.POLICY_BUNDLE.name, profile(c.POLICY_BUNDLE))
        self.status_pub = self.create_publisher(String, c.LEARNER_STATUS.name, profile(c.LEARNER_STATUS))
        self.mode_pub = self.create_publisher(String, c.CONTROL_MODE.name, profile(c.CONTROL_MODE))
        self.create_subscription(Image, c.CAMERA_IMAGE.name, self._on_image, profile(c.CAMERA_IMAGE))
        for cam in self.more_cameras:
            topic = c.CAMERA_TOPICS[cam]
            self.create_subscription(Image, topic.name, lambda msg, cam=cam: self._on_more_image(cam, msg),
                                     profile(topic))
        self.create_subscription(PoseStamped, c.EE_POSE.name, self._on_pose, profile(c.EE_POSE))
        self.create_subscription(JointState, c.GRIPPER_STATE.name, self._on_gripper, profile(c.GRIPPER_STATE))
        self.create_subscription(JointState, c.APPLIED_ACTION.name, self._on_applied, profile(c.APPLIED_ACTION))
        self.create_subscription(Vector3Stamped, c.REWARD.name, self._on_reward, profile(c.REWARD))
        self.create_subscription(String, c.EPISODE_STATUS.name, self._on_episode_status, profile(c.EPISODE_STATUS))
        self.create_timer(0.1, self._tick)
        self._holding = False
        self.get_logger().info(f'actor: sending transitions to {endpoint} as {robot_id!r}'
                               f'{" (CurveZMQ)" if keys else ""}; outbox {outbox}')

    # --- inputs --------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, msg: Image) -> None:
        try:
            self.image = np.array(image_array(msg), copy=True)
        except ImageRejected as e:
            self.faults.fault(c.CAMERA_IMAGE.name, e.code, f'camera image not recorded: {e}')
            return
        self.image_stamp = to_sec(msg.header.stamp)

    def _on_more_image(self, camera: str, msg: Image) -> None:
        """A further camera's image: the steps after it carry it (the sim publishes it with the front's stamp)."""
        try:
            self.more_images[camera] = np.array(image_array(msg), copy=True)
        except ImageRejected as e:
            self.faults.fault(c.CAMERA_TOPICS[camera].name, e.code, f'{camera} camera image not recorded: {e}')

    def _on_pose(self, msg: PoseStamped) -> None:
        self.robot.add_pose(to_sec(msg.header.stamp), self._now(), *pose_arrays(msg))

    def _on_gripper(self, msg: JointState) -> None:
        try:
            self.robot.add_gripper(to_sec(msg.header.stamp), self._now(), gripper_opening(msg))
        except ValueError as e:
            self.faults.fault(c.GRIPPER_STATE.name, 'invalid', f'gripper state ignored: {e}')

    def _on_reward(self, msg: Vector3Stamped) -> None:
        self.assembler.on_reward(to_sec(msg.header.stamp), float(msg.vector.x))

    def _on_applied(self, msg: JointState) -> None:
        try:
            action, intervention = applied_action(msg)
        except ValueError as e:
            self.faults.fault(c.APPLIED_ACTION.name, 'invalid', f'applied action not recorded: {e}')
            return
        if not self._has_images() or not self._has_state():
            return
        self.assembler.on_step(self._now(), self.image, self.image_stamp, self._state(), action, intervention,
                               dict(self.more_images))

    def _has_images(self) -> bool:
        return self.image is not None and all(cam in self.more_images for cam in self.more_cameras)

    def _has_state(self) -> bool:
        latest = self.robot.latest()
        return latest.position is not None and latest.gripper_opening is not None

    def _state(self) -> np.ndarray:
        """The robot state of the current image's stamp (the policy node pairs them the same way)."""
        return state_vector(c.STATE_KEYS, self.robot.at(self.image_stamp))

    def _read_status(self, msg: String) -> dict | None:
        """The episode status, or None (with a log line) for a bad one: the episode goes on as it was."""
        try:
            return parse_status(msg.data)
        except ValueError as e:
            self.get_logger().error(f'{c.EPISODE_STATUS.name} ignored: {e}', throttle_duration_sec=10.0)
            return None

    def _on_episode_status(self, msg: String) -> None:
        status = self._read_status(msg)
        if status is None:
            return
        before, self.episode_status = self.episode_status, status
        started, stopped = _started_stopped(before, status)
        if stopped:                              # sent once o_T and its reward are in (see _tick)
            self._pending_finish = before if before.get('episode') != status['episode'] else status
            self._finish_deadline = self._now() + self.final_frame_wait_s
        if started and self._pending_finish is not None:
            self._finish(self._pending_finish)   # the next episode is already here: no later frame is o_T
        if started:
            self.assembler.start(status.get('instruction', ''))
        if status['state'] == 'stopped' and status.get('label'):
            self._label_update(status)

    def _final_frame_ready(self) -> bool:
        """o_T (the first image after the last step's) has come, and its reward too (or it is too late)."""
        last = self.assembler.last_image_stamp
        fresh = last is not None and self.image_stamp > last
        return (fresh and self.image_stamp in self.assembler.rewards) or self._now() > self._finish_deadline

    def _finish(self, status: dict) -> None:
        self._pending_finish = None
        key = self.assembler.episode.key if self.assembler.episode else ''
        state = self._state() if self._has_state() and self._has_images() else None
        chunks = self.assembler.stop(self._now(), self.image if state is not None else None, self.image_stamp,
                                     state, bool(status.get('success')), str(status.get('label', '')),
                                     dict(self.more_images))
        for meta, arrays in chunks:
            self._send(meta, arrays)
        if key:
            self._finished[int(status['episode'])] = (key, str(status.get('label', '')))

    def _label_update(self, status: dict) -> None:
        """An operator label that came after the episode's last chunk went out."""
        entry = self._finished.get(int(status['episode']))
        if entry is None or entry[1] == status['label']:
            return
        key, _ = entry
        self._finished[int(status['episode'])] = (key, status['label'])
        self._send({'episode': key, 'label_update': {'label': status['label'],
                                                        'success': bool(status.get('success'))}}, {})

    def _send(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.link.send(meta, arrays)                     # on disk in the outbox when this returns
        self.steps_sent += len(arrays.get('action', ()))

    def _on_bundle(self, version: str, path: Path) -> None:
        """From the link's worker thread: offer it to the policy node (it validates and swaps)."""
        self.bundle_version = version
        self.bundle_pub.publish(String(data=json.dumps({'path': str(path), 'version': version})))
        self.get_logger().info(f'new policy bundle {version} from the learner: {path}')

    # --- periodic ------------------------------------------------------------------------------------
    def health(self) -> Health:
        """The link for /diagnostics: connected is OK; otherwise a warning with what waits on disk."""
        values = {'backlog': self.link.backlog, 'chunks_acked': self.link.chunks_acked,
                  'steps_recorded': self.assembler.steps_recorded, 'rewards_missing': self.assembler.rewards_missing,
                  'bundle_version': self.bundle_version}
        if self.link.connected:
            return Health('ok', 'sending transitions to the learner', values)
        return Health('warn', f'learner unreachable: {self.link.backlog} chunks wait on disk', values)

    def _tick(self) -> None:
        if self._pending_finish is not None and self._final_frame_ready():
            latest = self.episode_status       # a label given while waiting is in the newer status
            same = latest.get('episode') == self._pending_finish.get('episode') and latest.get('state') == 'stopped'
            self._finish(latest if same else self._pending_finish)
        for meta, arrays in self.assembler.ready_chunks(self._now()):
            self._send(meta, arrays)
        if self.hold_without_learner and self.link.connected == self._holding:
            self._holding = not self.link.connected
            self.mode_pub.publish(String(data='hold' if self._holding else 'auto'))
            if self._holding:
                self.get_logger().warning('learner unreachable: holding the arm still')
            else:
                self.get_logger().info('learner back: policy control resumed')
        self.status_pub.publish(String(data=json.dumps({
            'connected': self.link.connected, 'backlog': self.link.backlog, 'chunks_sent': self.link.chunks_sent,
            'chunks_acked': self.link.chunks_acked, 'steps_sent': self.steps_sent, 'steps_recorded': self.assembler.steps_recorded,
            'rewards_missing': self.assembler.rewards_missing, 'bundles_received': self.link.bundles_received,
            'bundle_version': self.bundle_version})))

    def on_shutdown(self) -> None:
        if self._pending_finish is not None:
            self._finish(self._pending_finish)
        elif self.assembler.episode is not None and self.episode_status:
            self._finish({**self.episode_status, 'success': False, 'label': ''})   # keep what was recorded
        self.link.close()


def _started_stopped(before: dict, status: dict) -> tuple[bool, bool]:
    """Whether an episode started and whether one stopped between two statuses (a new episode number while
    running is both)."""
    other = before.get('episode') != status['episode']
    started = status['state'] == 'running' and (before.get('state') != 'running' or other)
    stopped = before.get('state') == 'running' and (status['state'] != 'running' or other)
    return started, stopped


def main(args: list[str] | None = None) -> int:
    return run_node(ActorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

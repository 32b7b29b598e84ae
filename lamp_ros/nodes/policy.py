"""policy node: runs a policy bundle with onnxruntime (no torch on the robot).

Observation = latest camera image + the robot state of the image's stamp (fields named by the bundle; on
a new image it waits up to sync_wait_s for that state, which comes on other topics) + the images of the
bundle's further cameras (observation.cameras, e.g. the wrist's on camera/wrist/image_raw: on a new front
image it waits up to sync_wait_s for theirs of the same stamp, too) + the embedding of the
current instruction (computed once per instruction by the bundle's text encoder). By default it acts
on each fresh image, no faster than the control rate (trigger:=image), which keeps camera-to-command
latency at the compute time; trigger:=timer acts on a fixed timer with the latest image instead.
Whatever is wrong (bundle, image, missing input) is logged with the reason; the node stays up and
publishes no action, so the safety layer's watchdog holds the arm still.

New bundles offered on policy/bundle (by the learner link) are loaded and validated in a background thread
and swapped in only between episodes (or at once when no episode runs); policy/status reports the model
version in use. With require_episode, it acts only while an episode runs (episode/event start..stop).
With explore_std > 0 (the finetune graph sets it) Gaussian noise is added to each action (core/exploration.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray, String

from lamp_ros import contract as c
from lamp_ros.core.bundle_swap import BundleSwapper, load_checked
from lamp_ros.core.embedding_cache import EmbeddingCache
from lamp_ros.core.exploration import ActionNoise
from lamp_ros.core.images import ImageRejected, fit_to_size
from lamp_ros.core.instruction import accepted_instruction
from lamp_ros.core.observation import StateHistory, state_vector
from lamp_ros.core.pacing import ImagePacer
from lamp_ros.ros.convert import action_msg, gripper_opening, image_array, pose_arrays, to_sec
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.node_process import BadParameter, declare, run_node
from lamp_ros.ros.fault_reporting import log_state_change, node_fault_log
from lamp_ros.ros.interfaces import profile
from models.bundle import BundleError
from models.runtime import PolicyRuntime


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__('policy')
        self.bundle_path = declare(self, 'bundle_path', '', 'Policy bundle directory (manifest.json, ONNX files).')
        self.control_rate_hz = declare(self, 'control_rate_hz', c.DEFAULT_CONTROL_RATE_HZ,
                                       'Control rate, Hz; must equal the rate the bundle was trained at.')
        self.action_scale_m = declare(self, 'action_scale_m', c.ACTION_SCALE_M,
                                      'Metres per control step for |action| = 1; must equal the bundle\'s.')
        self.trigger = declare(self, 'trigger', 'image',
                               "'image': act on each fresh image (at most control_rate_hz); 'timer': act on a timer.")
        self.threads = declare(self, 'threads', 1, 'onnxruntime threads (1 keeps the control loop predictable).')
        self.resize_images = declare(self, 'resize_images', True,
                                     "Downscale images of the bundle's aspect ratio to its image size.")
        self.require_episode = declare(self, 'require_episode', False,
                                       'Act only while an episode runs (between episode/event start and stop).')
        stale_periods = declare(self, 'stale_timeout_periods', 1.5,
                                'Images and robot state older than this many control periods are not used.')
        self.stale_s = stale_periods / self.control_rate_hz
        self.sync_wait_s = declare(self, 'sync_wait_s', 0.03,
                                   "On a new image, wait up to this long for the robot state of the image's "
                                   'stamp (it comes on other topics, often just after the image).')
        explore_std = declare(self, 'explore_std', 0.0, 'Exploration while finetuning: Gaussian noise of this std '
                              'on the motion actions ([-1, 1] units; 0: the policy as it is, for deployment).')
        explore_gripper = declare(self, 'explore_gripper', 0.0, 'Gripper noise as a fraction of explore_std (0: the '
                                  'gripper follows the policy).')
        try:
            self.noise = ActionNoise(explore_std, explore_gripper)
        except ValueError as e:
            raise BadParameter(str(e)) from None
        if self.trigger not in ('image', 'timer'):
            raise BadParameter(f"trigger must be 'image' or 'timer', got '{self.trigger}'")

        self.action_pub = self.create_publisher(Float32MultiArray, c.POLICY_ACTION.name, profile(c.POLICY_ACTION))
        self.status_pub = self.create_publisher(String, c.POLICY_STATUS.name, profile(c.POLICY_STATUS))
        self.runtime: PolicyRuntime | None = None
        self._embeddings: EmbeddingCache | None = None   # the runtime's, made with it (_use)
        self.status = {'state': 'loading', 'bundle': self.bundle_path, 'model_version': '', 'reason': '',
                       'swaps': 0, 'update': '', 'explore_std': float(self.noise.scale[0])}
        self.faults = node_fault_log(self, 'input refused')
        self.swapper = BundleSwapper(self._load, self.get_logger().error)
        self.episode_running = False
        self._load_bundle()

        self.robot = StateHistory()
        self.image: np.ndarray | None = None
        self.image_t: float | None = None              # arrival
        self.image_stamp = 0.0                         # header stamp
        self.more_images: dict[str, tuple[np.ndarray, float, float]] = {}   # camera -> (image, arrival, stamp)
        self._sync_timer = None                        # set while an image waits for its robot state
        self.instruction = ''
        self.embedding: np.ndarray | None = None
        self.pacer = ImagePacer(self.control_rate_hz)
        self.actions_published = 0
        self.images_rejected = 0
        self._waiting_for: tuple[str, ...] = ()

        self.create_subscription(Image, c.CAMERA_IMAGE.name, self._on_image, profile(c.CAMERA_IMAGE))
        for camera, topic in c.CAMERA_TOPICS.items():
            if camera != 'front':
                self.create_subscription(Image, topic.name, lambda msg, cam=camera: self._on_more_image(cam, msg),
                                         profile(topic))
        self.create_subscription(PoseStamped, c.EE_POSE.name, self._on_pose, profile(c.EE_POSE))
        self.create_subscription(JointState, c.GRIPPER_STATE.name, self._on_gripper, profile(c.GRIPPER_STATE))
        self.create_subscription(String, c.INSTRUCTION.name, self._on_instruction, profile(c.INSTRUCTION))
        self.create_subscription(String, c.EPISODE_EVENT.name, self._on_episode_event, profile(c.EPISODE_EVENT))
        self.create_subscription(String, c.POLICY_BUNDLE.name, self._on_bundle_offer, profile(c.POLICY_BUNDLE))
        self.create_timer(0.1, self._maybe_swap)
        if self.trigger == 'timer':
            self.create_timer(1.0 / self.control_rate_hz, self._on_timer)

    # --- bundle --------------------------------------------------------------------------------------
    def _load(self, path: Path) -> PolicyRuntime:
        return load_checked(path, self.threads, self.control_rate_hz, self.action_scale_m)

    def _load_bundle(self) -> None:
        if not self.bundle_path:
            self._set_status('refused', 'no bundle_path given: the policy will not act')
            return
        try:
            runtime = self._load(Path(self.bundle_path))
        except BundleError as e:
            self._set_status('refused', str(e))
            return
        self._use(runtime, Path(self.bundle_path))
        self._set_status('waiting', 'waiting for inputs')

    def _use(self, runtime: PolicyRuntime, path: Path) -> None:
        self.runtime = runtime
        self._embeddings = EmbeddingCache(runtime.embed_instruction)
        m = runtime.manifest
        self.status.update(bundle=str(path), model_version=m.model_version, image_size=list(m.image_size))
        self.get_logger().info(f'using bundle {path} (model {m.model_version}, image {m.image_size} from '
                               f'{", ".join(m.cameras)}, state {list(m.state_keys)}, {m.control_rate_hz} Hz)')

    def _on_bundle_offer(self, msg: String) -> None:
        try:
            offer = json.loads(msg.data)
            path, version = Path(offer['path']), str(offer['version'])
        except (ValueError, KeyError, TypeError) as e:
            self.get_logger().error(f'policy/bundle offer ignored: {e} in {msg.data[:80]!r}', throttle_duration_sec=5.0)
            return
        if version == self.status['model_version']:
            return
        self.status['update'] = f'loading {version}'
        self.swapper.offer(path, version, self.instruction)

    def _maybe_swap(self) -> None:
        """Between episodes (or with none running), take a bundle the loader finished."""
        if self.episode_running:
            return
        ready = self.swapper.take()
        if ready is None:
            if self.swapper.last_error and self.status['update'] != self.swapper.last_error:
                self.status['update'] = self.swapper.last_error
                self.status_pub.publish(String(data=json.dumps(self.status)))
            return
        self._use(ready.runtime, ready.path)
        if self._sync_timer is not None:
            self._stop_waiting()                      # the waiting image was fitted to the old bundle
        self.image = self.image_t = None              # the new bundle may take another image size
        self.more_images.clear()
        if self.instruction:
            self.embedding = self._embeddings.put(self.instruction, ready.embedding) \
                if ready.instruction == self.instruction else self._embeddings(self.instruction)
        self.status['swaps'] += 1
        self.status['update'] = f'swapped to {ready.version}'
        self.get_logger().info(f'policy swapped to bundle version {ready.version}')
        self.status_pub.publish(String(data=json.dumps(self.status)))

    def _on_episode_event(self, msg: String) -> None:
        if msg.data == 'start':
            self.episode_running = False          # a waiting bundle goes in before the first step
            self._maybe_swap()
            self.episode_running = True
            if self.runtime is not None:
                self.runtime.reset()
        elif msg.data == 'stop':
            self.episode_running = False

    def health(self) -> Health:
        """policy/status for /diagnostics: running is OK, loading and waiting a warning, refused an error."""
        level = {'running': 'ok', 'refused': 'error'}.get(self.status['state'], 'warn')
        return Health(level, f"{self.status['state']}: {self.status['reason']}",
                      {'model_version': self.status['model_version'], 'bundle': self.status['bundle'],
                       'swaps': self.status['swaps'], 'actions_published': self.actions_published,
                       'explore_std': self.status['explore_std']})

    def _set_status(self, state: str, reason: str) -> None:
        if (state, reason) == (self.status['state'], self.status['reason']):
            return
        self.status.update(state=state, reason=reason)
        log_state_change(self, 'policy', state, reason, errors=('refused',))
        self.status_pub.publish(String(data=json.dumps(self.status)))

    # --- inputs --------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_instruction(self, msg: String) -> None:
        text = accepted_instruction(msg.data, self.faults)
        if text is None:
            return
        if self.runtime is None:
            self.instruction = text
            return
        self.instruction, self.embedding = text, self._embeddings(text)
        self.runtime.reset()
        self.get_logger().info(f"instruction: '{text}'")

    def _on_pose(self, msg: PoseStamped) -> None:
        position, quaternion = pose_arrays(msg)
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(quaternion))):
            self.faults.fault(c.EE_POSE.name, 'non_finite', 'non-finite EE pose ignored')
            return
        self.robot.add_pose(to_sec(msg.header.stamp), self._now(), position, quaternion)
        self._act_when_synced()

    def _on_gripper(self, msg: JointState) -> None:
        try:
            opening = gripper_opening(msg)
        except ValueError as e:
            self.faults.fault(c.GRIPPER_STATE.name, 'invalid', f'gripper state ignored: {e}')
            return
        self.robot.add_gripper(to_sec(msg.header.stamp), self._now(), opening)
        self._act_when_synced()

    def _fitted(self, msg: Image, camera: str) -> np.ndarray | None:
        """A camera's image at the bundle's size, or None (counted and reported) if it cannot be used."""
        h, w = self.runtime.manifest.image_size
        try:
            return np.array(fit_to_size(image_array(msg), h, w, self.resize_images), copy=True)
        except ImageRejected as e:
            self.images_rejected += 1
            what = 'camera image' if camera == 'front' else f'{camera} camera image'
            self.faults.fault(c.CAMERA_TOPICS[camera].name, e.code, f'{what} rejected: {e}')
            return None

    def _on_image(self, msg: Image) -> None:
        if self.runtime is None:
            return
        image = self._fitted(msg, 'front')
        if image is None:
            return
        t = self._now()
        self.image, self.image_t, self.image_stamp = image, t, to_sec(msg.header.stamp)
        if self.trigger == 'image' and self.pacer.due(t) and self._sync_timer is None:
            self._sync_timer = self.create_timer(self.sync_wait_s, self._on_sync_timeout)
            self._act_when_synced()

    def _on_more_image(self, camera: str, msg: Image) -> None:
        """An image of a further camera the bundle sees (e.g. the wrist's): kept for the next action."""
        if self.runtime is None or camera not in self.runtime.manifest.cameras:
            return
        image = self._fitted(msg, camera)
        if image is None:
            return
        self.more_images[camera] = (image, self._now(), to_sec(msg.header.stamp))
        self._act_when_synced()

    def _more_images_caught_up(self) -> bool:
        """Every further camera has an image of the waiting front image's stamp (or a later one)."""
        return all(camera in self.more_images and self.more_images[camera][2] >= self.image_stamp
                   for camera in self.runtime.manifest.cameras[1:])

    def _act_when_synced(self) -> None:
        """Act on the waiting image once the robot state and the further cameras' images of its stamp are in."""
        if self._sync_timer is None or self.runtime is None or self.image_t is None:
            return
        if self.robot.caught_up(self.runtime.manifest.state_keys, self.image_stamp, self.image_t) and \
                self._more_images_caught_up():
            self._stop_waiting()
            self._act(self._now())

    def _on_sync_timeout(self) -> None:
        """The state of the image's stamp did not come in sync_wait_s: act on the nearest there is."""
        if self._sync_timer is not None:
            self._stop_waiting()
            self._act(self._now())

    def _stop_waiting(self) -> None:
        self.destroy_timer(self._sync_timer)
        self._sync_timer = None

    def _on_timer(self) -> None:
        if self.runtime is not None:
            self._act(self._now())

    # --- acting --------------------------------------------------------------------------------------
    def _act(self, t: float) -> None:
        if self.require_episode and not self.episode_running:
            self._set_status('waiting', 'waiting for an episode to start')
            return
        waiting = self._missing_inputs(t)
        if waiting:
            self._set_status('waiting', 'waiting for ' + ', '.join(waiting))
            return
        more_cameras = self.runtime.manifest.cameras[1:]
        state = state_vector(self.runtime.manifest.state_keys, self.robot.at(self.image_stamp))
        action = self.runtime.act(self.image, state, self.embedding,
                                  {cam: self.more_images[cam][0] for cam in more_cameras})
        if not np.all(np.isfinite(action)):
            self._set_status('waiting', f'policy produced a non-finite action {action.tolist()}; not published')
            return
        action = self.noise(action)
        self.action_pub.publish(action_msg(action))
        self.pacer.acted(t)
        self.actions_published += 1
        self._set_status('running', f"acting on '{self.instruction}'")


    def _missing_inputs(self, t: float) -> list[str]:
        """The topics the policy still waits for at time t (never heard, or stale): camera(s), robot state, and
        the instruction."""
        waiting = self.robot.latest().missing(self.runtime.manifest.state_keys, t, self.stale_s)
        if self.image_t is None or t - self.image_t > self.stale_s:
            waiting.insert(0, c.CAMERA_IMAGE.name)
        waiting += [c.CAMERA_TOPICS[cam].name for cam in self.runtime.manifest.cameras[1:]
                    if cam not in self.more_images or t - self.more_images[cam][1] > self.stale_s]
        if self.embedding is None:
            waiting.append(c.INSTRUCTION.name)
        return waiting


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

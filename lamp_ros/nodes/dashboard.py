"""dashboard node: the operator's web page, served from the robot computer (lamp_ros/dashboard/: the page, the
aiohttp server, access rules). The ROS side is this one node: it listens to what the console listens to (the
console's ConsoleLink and StatusBoard, so both show the same), plus the cameras, the end-effector pose, the command
and the episodes, and sends what the console sends. The page reads state only through it.

Bound to 127.0.0.1 by default (no token); on any other address every control action needs the token printed at
start (or read from `token_file`); engaging the e-stop never does. Taking over (control mode teleop) needs the
live page connection: when that connection drops, the arm is held (control mode hold)."""
from __future__ import annotations

import time
from typing import Any

from geometry_msgs.msg import PoseStamped, TwistStamped, Vector3Stamped
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.console.board import StatusBoard
from lamp_ros.console.link import ConsoleLink
from lamp_ros.core.episode import parse_status
from lamp_ros.core.images import ImageRejected, fit_to_size
from lamp_ros.core.safety import SafetyConfig
from lamp_ros.dashboard.access import Access, load_token
from lamp_ros.dashboard.history import EpisodeHistory, LatestFrames
from lamp_ros.dashboard.server import DashboardServer
from lamp_ros.ros.convert import image_array, pose_arrays, to_sec, twist_linear
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.interfaces import profile
from lamp_ros.ros.node_process import BadParameter, declare, run_node

CAMERAS = ('front', 'wrist', 'policy')          # 'policy': the front image at the size the policy sees it
HISTORY = 20                                    # instructions remembered for the page's history


class DashboardNode(Node):
    def __init__(self) -> None:
        super().__init__('dashboard')
        host = declare(self, 'host', '127.0.0.1', 'Address to serve on; beyond loopback a token is required.')
        port = declare(self, 'port', 8080, 'TCP port (0: any free one, printed at start).')
        token_file = declare(self, 'token_file', '', 'File whose first line is the token (default: a random one).')
        d = SafetyConfig()
        self.box = {'min': list(declare(self, 'workspace_min', list(d.workspace_min), "The safety layer's box.")),
                    'max': list(declare(self, 'workspace_max', list(d.workspace_max), "The safety layer's box."))}
        try:
            token = load_token(host, token_file)
        except (OSError, ValueError) as e:
            raise BadParameter(str(e)) from None
        self.cameras = CAMERAS
        self.frames = LatestFrames()
        self.episodes = EpisodeHistory()
        self.board = StatusBoard()
        self.link = ConsoleLink(self, self.board)
        self.ee: list[float] | None = None
        self.command: list[float] = [0.0, 0.0, 0.0]
        self.holder = ''                                 # the page connection that took over
        self.instructions: list[str] = []
        for camera, topic in c.CAMERA_TOPICS.items():
            self.create_subscription(Image, topic.name, lambda m, cam=camera: self._on_image(cam, m), profile(topic))
        self.create_subscription(PoseStamped, c.EE_POSE.name, self._on_pose, profile(c.EE_POSE))
        self.create_subscription(TwistStamped, c.EE_TWIST_CMD.name, self._on_command, profile(c.EE_TWIST_CMD))
        self.create_subscription(String, c.EPISODE_STATUS.name, self._on_episode, profile(c.EPISODE_STATUS))
        self.create_subscription(Vector3Stamped, c.REWARD.name, lambda m: self.episodes.on_reward(m.vector.x),
                                 profile(c.REWARD))
        self.access = Access(token, self.get_logger().warning)
        self.server = DashboardServer(self, host, port, self.access, self.get_logger().info)
        try:
            bound = self.server.start()
        except OSError as e:
            raise BadParameter(f'cannot serve on {host}:{port}: {e.strerror or e} (choose another port)') from None
        url = f'http://{"127.0.0.1" if host in ("0.0.0.0", "::") else host}:{bound}/'
        self.url = url + (f'?token={token}' if token else '')
        self.get_logger().info(f'dashboard: {self.url}' + ('  (the token is needed for every control action)'
                                                            if token else ''))

    # --- ROS inputs (executor thread) ------------------------------------------------------------------
    def _on_image(self, camera: str, msg: Image) -> None:
        if not self.server.watching:
            return
        try:
            rgb = image_array(msg)
        except ImageRejected:
            return                                       # the policy and safety nodes report bad images
        stamp = to_sec(msg.header.stamp)
        self.frames.put(camera, rgb, stamp)
        size = self.board.status('policy').get('image_size')          # per frame: no whole snapshot
        if camera == 'front' and size:
            try:
                self.frames.put('policy', fit_to_size(rgb, int(size[0]), int(size[1]), True), stamp)
            except ImageRejected:
                pass                                     # a camera smaller than the policy's input: nothing to show

    def _on_pose(self, msg: PoseStamped) -> None:
        self.ee = [round(float(v), 4) for v in pose_arrays(msg)[0]]

    def _on_command(self, msg: TwistStamped) -> None:
        self.command = [round(float(v), 4) for v in twist_linear(msg)]

    def _on_episode(self, msg: String) -> None:
        try:
            self.episodes.on_status(parse_status(msg.data))
        except ValueError:
            return                                       # the console logs malformed statuses

    # --- the page (web thread) -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        s = self.board.snapshot(time.monotonic())
        learner = s.statuses.get('learner', {})
        return {'graph_running': s.graph_running, 'estop': s.estop, 'instruction': s.instruction,
                'instructions': self.instructions[-HISTORY:], 'mode': s.statuses.get('safety', {}).get(
                    'control_mode') or s.mode_topic, 'safety': s.statuses.get('safety', {}),
                'policy': s.statuses.get('policy', {}), 'episode': s.statuses.get('episode', {}),
                'learner': {k: learner.get(k) for k in ('bundle_version', 'updates', 'training')} if learner else {},
                'episodes': self.episodes.as_list(), 'ee': self.ee, 'command': self.command, 'box': self.box,
                'rates': {k: round(v, 1) for k, v in s.rates.items()}, 'took_over': bool(self.holder),
                'token_required': self.access.needs_token, 'now': time.time(),
                'log': [{'clock': line.clock, 'text': line.text, 'level': line.level} for line in s.log[-8:]]}

    def act(self, action: str, value: Any, holder: str) -> str:
        """One control action from the page (token already checked by the server)."""
        if action == 'estop':
            self.link.set_estop(True)
            return 'e-stop engaged'
        if action == 'release':
            self.link.set_estop(False)
            return 'e-stop released'
        if action == 'instruction':
            text = ' '.join(str(value or '').split())
            self.link.send_instruction(text)             # ValueError when empty
            self.instructions = [t for t in self.instructions if t != text] + [text]
            return f'instruction: {text}'
        if action in ('start', 'stop', 'reset'):
            self.link.episode(action)
            return f'episode {action} requested'
        if action == 'label':
            self.link.label(str(value))
            return f'labelled {value}'
        if action == 'take_over':
            self.holder = holder
            self.link.set_mode('teleop')
            return 'you have control (teleop); the arm holds if this page loses its connection'
        self.holder = ''                                 # give_back
        self.link.set_mode('auto')
        return 'control given back to the policy'

    def connection_lost(self, holder: str) -> None:
        if holder and holder == self.holder:
            self.holder = ''
            self.link.set_mode('hold')
            self.get_logger().warning('dashboard: the page in control lost its connection: arm held '
                                      '(control mode hold)')

    def health(self) -> Health:
        return Health('ok', f'serving {self.url.split("?")[0]}', {'token_required': self.access.needs_token})

    def on_shutdown(self) -> None:
        self.server.stop()


def main(args: list[str] | None = None) -> int:
    return run_node(DashboardNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

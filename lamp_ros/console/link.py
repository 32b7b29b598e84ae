"""The console's ROS side, without any UI: what it sends (instruction, e-stop, labels, control mode, episode
service calls) and what it listens to (statuses, rates, reward), all into a StatusBoard. Tests and scripts
drive it directly.

Instructions go to the prompt node's `instruction` parameter when a prompt node runs, so the graph keeps one
latched publisher of `instruction` (two latched publishers would give a late joiner both values, in no
defined order); without a prompt node the console publishes on `instruction` itself.
"""
from __future__ import annotations

import json
import time

import numpy as np
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from lamp_ros import contract as c
from lamp_ros.console.board import StatusBoard
from lamp_ros.core.arbiter import MODES
from lamp_ros.core.episode import LABELS
from lamp_ros.ros.convert import applied_action, twist_linear
from lamp_ros.ros.interfaces import message_class, profile

EPISODE_SERVICES = {'start': c.EPISODE_START_SERVICE, 'stop': c.EPISODE_STOP_SERVICE,
                    'reset': c.EPISODE_RESET_SERVICE}
PROMPT_PARAMETERS_SERVICE = 'prompt/set_parameters'
PROMPT_WAIT_S = 3.0           # a console just started may not have discovered the prompt node yet


class ConsoleLink:
    def __init__(self, node: Node, board: StatusBoard) -> None:
        self.node, self.board = node, board
        self._published_estop: bool | None = None
        self.instruction_pub = node.create_publisher(String, c.INSTRUCTION.name, profile(c.INSTRUCTION))
        self.estop_pub = node.create_publisher(Bool, c.ESTOP.name, profile(c.ESTOP))
        self.label_pub = node.create_publisher(String, c.EPISODE_LABEL.name, profile(c.EPISODE_LABEL))
        self.mode_pub = node.create_publisher(String, c.CONTROL_MODE.name, profile(c.CONTROL_MODE))
        self.episode_clients = {name: node.create_client(Trigger, service,
                                                         callback_group=MutuallyExclusiveCallbackGroup())
                                for name, service in EPISODE_SERVICES.items()}
        self.prompt_client = node.create_client(SetParameters, PROMPT_PARAMETERS_SERVICE,
                                                callback_group=MutuallyExclusiveCallbackGroup())
        now = time.monotonic
        node.create_subscription(message_class(c.CAMERA_IMAGE), c.CAMERA_IMAGE.name,
                                 lambda _: board.tick('camera', now()), profile(c.CAMERA_IMAGE), raw=True)
        node.create_subscription(message_class(c.POLICY_ACTION), c.POLICY_ACTION.name,
                                 lambda _: board.tick('policy', now()), profile(c.POLICY_ACTION), raw=True)
        node.create_subscription(message_class(c.TELEOP_ACTION), c.TELEOP_ACTION.name,
                                 lambda _: board.tick('teleop', now()), profile(c.TELEOP_ACTION), raw=True)
        node.create_subscription(message_class(c.EE_TWIST_CMD), c.EE_TWIST_CMD.name,
                                 lambda m: board.on_command(float(np.linalg.norm(twist_linear(m))), now()),
                                 profile(c.EE_TWIST_CMD))
        node.create_subscription(message_class(c.APPLIED_ACTION), c.APPLIED_ACTION.name, self._on_applied,
                                 profile(c.APPLIED_ACTION))
        node.create_subscription(message_class(c.REWARD), c.REWARD.name,
                                 lambda m: board.on_reward(m.vector.x, int(m.vector.z)), profile(c.REWARD))
        for source, topic in (('policy', c.POLICY_STATUS), ('safety', c.SAFETY_STATUS),
                              ('episode', c.EPISODE_STATUS), ('learner', c.LEARNER_STATUS), ('teleop', c.TELEOP_STATUS)):
            node.create_subscription(String, topic.name, lambda m, s=source: board.on_status(s, m.data, now()),
                                     profile(topic))
        node.create_subscription(String, c.INSTRUCTION.name, lambda m: board.on_instruction(m.data),
                                 profile(c.INSTRUCTION))
        node.create_subscription(Bool, c.ESTOP.name, lambda m: board.on_estop(m.data), profile(c.ESTOP))
        node.create_subscription(String, c.CONTROL_MODE.name, lambda m: board.on_mode(m.data), profile(c.CONTROL_MODE))
        self._pending_instruction: tuple[str, float] | None = None        # (text, give up on the prompt node at)
        node.create_timer(0.05, self._flush_instruction)

    def _on_applied(self, msg) -> None:
        try:
            _, intervention = applied_action(msg)
        except ValueError as e:
            self.board.log(f'control/applied_action ignored: {e}', 'error')
            return
        self.board.on_applied(intervention, time.monotonic())

    # --- what the operator sends ------------------------------------------------------------------------
    def send_instruction(self, text: str) -> None:
        """Hand the instruction to the prompt node (waiting up to PROMPT_WAIT_S for it to be discovered), or
        publish it ourselves when there is none."""
        text = ' '.join(text.split())
        if not text:
            raise ValueError('an instruction must not be empty')
        self.board.on_instruction_seen(text)
        self._pending_instruction = (text, time.monotonic() + PROMPT_WAIT_S)

    def _flush_instruction(self) -> None:
        if self._pending_instruction is None:
            return
        text, deadline = self._pending_instruction
        if not self.prompt_client.service_is_ready():
            if time.monotonic() < deadline:
                return
            self._pending_instruction = None
            self.instruction_pub.publish(String(data=text))
            self.board.log(f"instruction '{text}' published (no prompt node)")
            return
        self._pending_instruction = None
        request = SetParameters.Request(parameters=[Parameter(name='instruction', value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=text))])
        self.prompt_client.call_async(request).add_done_callback(lambda f: self._on_prompt_set(f, text))

    def _on_prompt_set(self, future: Future, text: str) -> None:
        result = future.result()
        if result is not None and result.results and result.results[0].successful:
            self.board.log(f"instruction '{text}' set (prompt node publishes it)")
        else:
            reason = result.results[0].reason if result is not None and result.results else 'no answer'
            self.board.log(f"prompt node refused instruction '{text}': {reason}", 'error')

    def set_estop(self, engaged: bool) -> None:
        self.estop_pub.publish(Bool(data=engaged))
        self._published_estop = engaged
        if engaged:
            self.board.log('E-STOP ENGAGED', 'error')
        else:
            self.board.log('e-stop released')

    def toggle_estop(self, current: bool | None) -> None:
        """Release if engaged; engage if released or unknown (never release what we cannot see)."""
        if current is None:
            current = self._published_estop
        self.set_estop(not current if current is not None else True)

    def label(self, label: str) -> None:
        if label not in LABELS:
            raise ValueError(f'label must be one of {LABELS}, got {label!r}')
        self.label_pub.publish(String(data=label))
        self.board.log(f'labelled the episode: {label}')

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f'control mode must be one of {MODES}, got {mode!r}')
        self.mode_pub.publish(String(data=mode))
        self.board.log(f'control mode -> {mode}')

    def episode(self, action: str) -> None:
        """Call episode/start|stop|reset; the answer lands in the log."""
        client = self.episode_clients[action]
        if not client.service_is_ready():
            self.board.log(f'{EPISODE_SERVICES[action]} is not available: is the episode node running?', 'error')
            return
        self.board.log(f'{EPISODE_SERVICES[action]} ...')
        client.call_async(Trigger.Request()).add_done_callback(lambda f: self._on_episode_answer(f, action))

    def _on_episode_answer(self, future: Future, action: str) -> None:
        result = future.result()
        if result is None:
            self.board.log(f'{EPISODE_SERVICES[action]}: no answer', 'error')
        elif result.success:
            self.board.log(f'{EPISODE_SERVICES[action]}: {result.message}')
        else:
            self.board.log(f'{EPISODE_SERVICES[action]} failed: {result.message}', 'error')


def status_json(board: StatusBoard) -> str:
    """The board as JSON (for scripts: `lamp-ros console --status`)."""
    s = board.snapshot(time.monotonic())
    return json.dumps({'graph_running': s.graph_running, 'estop': s.estop, 'instruction': s.instruction,
                       'rates': s.rates, 'reward': s.reward, 'statuses': s.statuses}, indent=2)

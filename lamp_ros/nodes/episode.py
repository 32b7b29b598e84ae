"""episode node: episode start/stop/reset services, step limit and success, for finetuning and recording.

Services (std_srvs/Trigger): episode/start, episode/stop, episode/reset (stop, arm home via the arm
driver's robot/reset, then start again if auto_start). Publishes episode/event ('start'/'stop': the policy,
the reward node and the actor bridge follow it) and episode/status (JSON, latched). Counts steps on
control/applied_action; success from sim/success, the operator's episode/label, or the reward
(success_sources). With auto_reset, an episode that stopped is followed by reset and a new episode.
"""
from __future__ import annotations

import json

from geometry_msgs.msg import Vector3Stamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from lamp_ros import contract as c
from lamp_ros.core.episode import EpisodeConfig, EpisodeTracker
from lamp_ros.core.instruction import accepted_instruction
from lamp_ros.ros.convert import applied_action
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.fault_reporting import node_fault_log
from lamp_ros.ros.interfaces import profile
from lamp_ros.ros.node_process import declare, run_node


class EpisodeNode(Node):
    def __init__(self) -> None:
        super().__init__('episode')
        d = EpisodeConfig()
        self.tracker = EpisodeTracker(EpisodeConfig(
            max_steps=declare(self, 'max_steps', d.max_steps, 'Control steps after which an episode stops.'),
            success_sources=tuple(declare(self, 'success_sources', list(d.success_sources),
                                          "What counts as success: 'sim' (sim/success), 'label' (operator), "
                                          "'reward' (reward >= reward_threshold).")),
            reward_threshold=declare(self, 'reward_threshold', d.reward_threshold,
                                     "Reward at or above which an episode succeeded (with 'reward')."),
            stop_on_success=declare(self, 'stop_on_success', d.stop_on_success, 'Stop an episode when it succeeds.')))
        self.auto_start = declare(self, 'auto_start', False, 'Start an episode when the node starts.')
        self.auto_reset = declare(self, 'auto_reset', False,
                                  'After an episode stops (step limit, success, label; not an operator stop): '
                                  'reset the arm and start the next one.')
        self.reset_delay_s = declare(self, 'reset_delay_s', 0.3,
                                     'Auto reset waits this long after a stop: the frame that shows the last '
                                     "action's result (o_T) and its reward still belong to the episode.")
        self.wired_topics = declare(self, 'wired_topics', [c.EE_TWIST_CMD.name, c.GRIPPER_CMD.name],
                                    'Command topics that need a publisher and a subscriber (as discovered here) '
                                    'before a reset: an episode begun earlier moves the arm while the driver '
                                    'does not yet hear the gripper node.')
        self.instruction = ''
        self.faults = node_fault_log(self, 'input refused')
        self._stopped_at = 0.0
        self.event_pub = self.create_publisher(String, c.EPISODE_EVENT.name, profile(c.EPISODE_EVENT))
        self.status_pub = self.create_publisher(String, c.EPISODE_STATUS.name, profile(c.EPISODE_STATUS))
        # A suspended coroutine callback keeps its callback group busy: the reset's robot/reset answer must be
        # delivered in another group, or the awaiting reset would wait for itself.
        self.robot_reset = self.create_client(Trigger, c.ROBOT_RESET_SERVICE,
                                              callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, c.EPISODE_START_SERVICE, self._on_start)
        self.create_service(Trigger, c.EPISODE_STOP_SERVICE, self._on_stop)
        self.create_service(Trigger, c.EPISODE_RESET_SERVICE, self._on_reset)
        self.create_subscription(JointState, c.APPLIED_ACTION.name, self._on_applied, profile(c.APPLIED_ACTION))
        self.create_subscription(Bool, c.SIM_SUCCESS.name, self._on_sim_success, profile(c.SIM_SUCCESS))
        self.create_subscription(Vector3Stamped, c.REWARD.name, self._on_reward, profile(c.REWARD))
        self.create_subscription(String, c.EPISODE_LABEL.name, self._on_label, profile(c.EPISODE_LABEL))
        self.create_subscription(String, c.INSTRUCTION.name, self._on_instruction, profile(c.INSTRUCTION))
        self._resetting = False
        self._pending_auto_start = self.auto_start
        self.create_timer(0.1, self._tick)
        self._publish()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- services ------------------------------------------------------------------------------------
    def _on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.tracker.start(self.instruction)
        self._publish()
        response.success, response.message = True, f'episode {self.tracker.episode} started'
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        was_running = self.tracker.state == 'running'
        self.tracker.stop('operator')
        self._publish()
        response.success = True
        response.message = f'episode {self.tracker.episode} stopped' if was_running else 'no episode running'
        return response

    async def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        ok, message = await self._reset()
        response.success, response.message = ok, message
        return response

    async def _reset(self) -> tuple[bool, str]:
        """Stop, bring the arm home through the driver's robot/reset, then start if auto_start/auto_reset."""
        if self._resetting:
            return False, 'a reset is already in progress'
        self._resetting = True
        try:
            self.tracker.stop('reset')
            self._publish()
            if not self.robot_reset.service_is_ready():
                message = f'{c.ROBOT_RESET_SERVICE} is not available (is the arm driver / sim_arm running?)'
                self.get_logger().error(message)
                return False, message
            unwired = self._unwired()
            if unwired:
                message = f'{", ".join(unwired)} is not available yet (command path still being discovered)'
                self.get_logger().warning(message, throttle_duration_sec=5.0)
                return False, message
            result = await self.robot_reset.call_async(Trigger.Request())
            if not result.success:
                self.get_logger().error(f'arm reset failed: {result.message}')
                return False, f'arm reset failed: {result.message}'
            if self.auto_start or self.auto_reset:
                self.tracker.start(self.instruction)
                self._publish()
            return True, result.message
        finally:
            self._resetting = False

    def _unwired(self) -> list[str]:
        """The wired_topics that lack a publisher or a subscriber, each with what is missing."""
        missing = []
        for topic in self.wired_topics:
            ends = [end for end, count in (('publisher', self.count_publishers(topic)),
                                           ('subscriber', self.count_subscribers(topic))) if count == 0]
            if ends:
                missing.append(f'{topic} ({" and ".join(ends)})')
        return missing

    # --- inputs --------------------------------------------------------------------------------------
    def _on_applied(self, msg: JointState) -> None:
        try:
            _, intervention = applied_action(msg)
        except ValueError as e:
            self.faults.fault(c.APPLIED_ACTION.name, 'invalid', f'applied action ignored: {e}')
            return
        self._apply(lambda: self.tracker.on_step(intervention))

    def _on_sim_success(self, msg: Bool) -> None:
        self._apply(lambda: self.tracker.on_sim_success(msg.data))

    def _on_reward(self, msg: Vector3Stamped) -> None:
        self._apply(lambda: self.tracker.on_reward(msg.vector.x))

    def _on_label(self, msg: String) -> None:
        try:
            self._apply(lambda: self.tracker.on_label(msg.data.strip()))
        except ValueError as e:
            self.faults.fault(c.EPISODE_LABEL.name, 'invalid', f'episode label ignored: {e}')

    def _on_instruction(self, msg: String) -> None:
        text = accepted_instruction(msg.data, self.faults)
        if text is not None:
            self.instruction = text                                   # used from the next episode on

    def _apply(self, change) -> None:
        """Publish episode/status when anything it shows changed, the step counter included (the console's
        counter is live)."""
        before = self._shown()
        change()
        if self._shown() != before:
            self._publish()

    def _shown(self) -> tuple:
        t = self.tracker
        return t.state, t.success, t.label, t.step, t.interventions

    async def _tick(self) -> None:
        if self._pending_auto_start and self.robot_reset.service_is_ready() and not self._unwired():
            self._pending_auto_start = False
            await self._reset()
        elif (self.auto_reset and self.tracker.state == 'stopped' and self.tracker.stop_reason != 'operator'
              and not self._resetting                     # an operator's stop stands until start or reset
              and self._now() - self._stopped_at >= self.reset_delay_s):
            await self._reset()

    def health(self) -> Health:
        status = self.tracker.status()
        return Health('ok', f"episode {status['episode']} {status['state']}, step {status['step']} of "
                            f"{status['max_steps']}",
                      {k: status[k] for k in ('instruction', 'success', 'stop_reason', 'interventions')})

    def _publish(self) -> None:
        for event in self.tracker.take_events():
            self.event_pub.publish(String(data=event))
            if event == 'stop':
                self._stopped_at = self._now()
            status = self.tracker.status()
            if event == 'start':
                self.get_logger().info(f"episode {status['episode']} started: '{status['instruction']}'")
            else:
                self.get_logger().info(f"episode {status['episode']} stopped ({status['stop_reason']}) after "
                                       f"{status['step']} steps, success={status['success']} "
                                       f"{status['success_source']}".rstrip())
        self.status_pub.publish(String(data=json.dumps(self.tracker.status())))


def main(args: list[str] | None = None) -> int:
    return run_node(EpisodeNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

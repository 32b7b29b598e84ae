"""prompt node: publishes the `instruction` parameter on the latched `instruction` topic, at start-up
and whenever the parameter changes (`ros2 param set /prompt instruction "open the drawer"`)."""
from __future__ import annotations

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.core.instruction import InstructionRejected, checked_instruction
from lamp_ros.ros.node_process import declare, run_node
from lamp_ros.ros.interfaces import profile


class PromptNode(Node):
    def __init__(self) -> None:
        super().__init__('prompt')
        self.pub = self.create_publisher(String, c.INSTRUCTION.name, profile(c.INSTRUCTION))
        instruction = declare(self, 'instruction', '', 'Language instruction for the policy (and the reward).')
        self.add_on_set_parameters_callback(self._on_set)
        if not instruction.strip():
            self.get_logger().warning("no instruction yet: set the 'instruction' parameter or publish on 'instruction'")
            return
        try:
            self._publish(checked_instruction(instruction))
        except InstructionRejected as e:
            self.get_logger().error(f'instruction parameter refused: {e}')

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == 'instruction':
                if not isinstance(p.value, str):
                    return SetParametersResult(successful=False, reason='instruction must be a non-empty string')
                try:
                    self._publish(checked_instruction(p.value))
                except InstructionRejected as e:
                    return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def _publish(self, instruction: str) -> None:
        self.pub.publish(String(data=instruction))
        self.get_logger().info(f"instruction: '{instruction}'")


def main(args: list[str] | None = None) -> int:
    return run_node(PromptNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

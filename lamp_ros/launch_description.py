"""Builds the ROS 2 LaunchDescription for launch/*.launch.py from lamp_ros.graph (the one description
of the graph), so `ros2 launch` and `lamp-ros deploy` start the same nodes with the same parameters.
Needs the `launch` and `launch_ros` packages, which come with a ROS 2 install."""
from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from lamp_ros import graph


def _nodes(context: LaunchContext, mode: str) -> list:
    args = {a.name: LaunchConfiguration(a.name).perform(context) for a in graph.arguments_for(mode)}
    g = graph.build(mode, **args)
    refused = graph.refused_bundle(g)
    if refused:
        raise RuntimeError(refused)                     # ros2 launch stops before any node starts
    actions = [LogInfo(msg=f'[lamp_ros] {note}') for note in g.notes]
    for n in g.nodes:
        actions.append(Node(
            package='lamp_ros', executable=n.spec.executable, name=n.spec.name, output='screen',
            parameters=[str(f) for f in n.params_files] + ([n.overrides] if n.overrides else []),
            remappings=list(n.spec.remappings), sigterm_timeout=str(n.spec.stop_timeout_s)))
    return actions


def generate(mode: str) -> LaunchDescription:
    declared = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.doc,
                                      **({'choices': list(a.choices)} if a.choices else {}))
                for a in graph.arguments_for(mode)]
    return LaunchDescription(declared + [OpaqueFunction(function=_nodes, kwargs={'mode': mode})])

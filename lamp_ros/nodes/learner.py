"""learner node: the online learner (lamp_ros.learner) inside the finetune graph, on the robot computer's
loopback by default. It trains in its own thread; the node only carries parameters and reports progress on
learner/progress. The same learner runs on another host with `lamp-ros learner` (then the graph gets
learner:=tcp://HOST:5555 and starts no learner node). It imports torch: it is training, not the robot path.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String

from lamp_ros import contract as c
from lamp_ros.learner.learner import Learner, LearnerOptions
from lamp_ros.paths import data_dir
from lamp_ros.ros.diagnostics import Health
from lamp_ros.ros.interfaces import profile
from lamp_ros.ros.node_process import declare, run_node


class LearnerNode(Node):
    def __init__(self) -> None:
        super().__init__('learner')
        run_dir = declare(self, 'run_dir', '', 'Learner run directory (empty: ~/.local/share/lamp_ros/learner/'
                          'run): created if absent, resumed if it exists.')
        init_run = declare(self, 'init_run', '', 'A lamp-train run to start from (empty: from scratch, `preset`).')
        demos = declare(self, 'demos_dir', '', 'Recorded episodes (lamp-ros record) to add to the replay, once each.')
        settings = tuple(x for x in declare(self, 'settings', [''], "A new run's config overrides, KEY=VALUE each "
                                            "(e.g. 'finetune.bc_decay_steps=40000'; RUN/config.yaml lists the "
                                            "keys; '' entries are ignored).") if x)
        keys_dir = declare(self, 'keys_dir', '', 'CurveZMQ keys (lamp-ros keys DIR); empty: no encryption.')
        options = LearnerOptions(
            run_dir=Path(run_dir).expanduser() if run_dir else data_dir() / 'learner' / 'run',
            init_run=Path(init_run).expanduser() if init_run else None,
            preset=declare(self, 'preset', 'cpu', 'From scratch: training preset (debug, cpu, paper).'),
            settings=settings,
            cameras=tuple(declare(self, 'cameras', ['front'], 'From scratch: the images the agent sees, front '
                                  "first (the finetune graph sets them from the bundle; an init run's agent "
                                  'decides otherwise).')),
            bind=declare(self, 'bind', 'tcp://127.0.0.1:5555', 'Where robots connect (tcp://0.0.0.0:5555: any host).'),
            keys_dir=Path(keys_dir).expanduser() if keys_dir else None,
            bundle_every=declare(self, 'bundle_every', 200, 'Agent updates between policy bundles.'),
            checkpoint_every=declare(self, 'checkpoint_every', 500, 'Agent updates between checkpoints.'),
            updates_per_transition=declare(self, 'updates_per_transition', 1.0,
                                           'At most this many agent updates per stored transition.'),
            min_transitions=declare(self, 'min_transitions', 0, 'No updates before this many transitions.'),
            device=declare(self, 'device', 'cpu', 'torch device, e.g. cuda.'),
            threads=declare(self, 'threads', 1, 'torch threads.'),
            demos_dir=Path(demos).expanduser() if demos else None,
            reward_source=declare(self, 'reward_source', '', 'task, r3m, clip or success: recorded in the run, '
                                  'which then refuses another (empty: as recorded, or the first robot hello\'s).'),
            max_message_bytes=declare(self, 'max_message_bytes', LearnerOptions.max_message_bytes,
                                      'A robot message over this many bytes is refused.'))
        logging.basicConfig(level=logging.INFO, format='[learner] %(message)s')
        self.learner = Learner(options)
        self.progress_pub = self.create_publisher(String, c.LEARNER_PROGRESS.name, profile(c.LEARNER_PROGRESS))
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._train, name='learner', daemon=True)
        self._thread.start()
        self.create_timer(1.0, self._report)

    def _train(self) -> None:
        try:
            self.learner.run(self._stop)
        except BaseException as e:             # said loudly, then the node exits non-zero (see _report)
            self._failure = e
            self.get_logger().fatal(f'learner stopped: {e!r}')
            raise

    def health(self) -> Health:
        """Training is OK, waiting for transitions too; paused (e.g. rewards missing) is a warning."""
        status = self.learner.status()
        level = 'error' if self._failure is not None else ('warn' if status['training'].startswith('paused')
                                                            else 'ok')
        return Health(level, status['training'], {k: status[k] for k in (
            'updates', 'bundle_version', 'reward_source', 'episodes', 'replay_transitions', 'robots',
            'interventions_per_episode')})

    def _report(self) -> None:
        """Progress; if training or the link died, end the node with an error (the process exits non-zero,
        so a supervisor restarts it; the robots keep buffering meanwhile)."""
        if self._failure is not None:
            raise RuntimeError(f'learner stopped: {self._failure!r}') from self._failure
        self.progress_pub.publish(String(data=json.dumps(self.learner.status())))

    def on_shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)
        self.learner.checkpoint()
        self.learner.close()


def main(args: list[str] | None = None) -> int:
    return run_node(LearnerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

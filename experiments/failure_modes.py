"""Why a lift-task bundle fails (not a test): each held-out episode played as `lamp-sim eval-bundle` plays it
(onnxruntime, the same scenes, 150 steps, ending at success), traced with the simulator's privileged state, and
each failure put in one class:

    never reached       the TCP never came within REACH_M of the grasp point
    reached, no grasp   it came close, the gripper never held the object
    dropped             it held the object, and not at the end
    stalled lifting     it holds the object at the end, below the success height, and has stopped moving
    moving              anything else (still holding and moving, or out of time)

    python experiments/failure_modes.py BUNDLE [--task take_lid_off_saucepan] [--episodes 30] [--json]
                                           [--critic RUN]

--critic RUN (the finetuning run the bundle came from; needs torch) adds, for each stalled lift, what the run's
critic (min of two heads) says at the last state: Q of the policy's action and of the same action with dz set to
PROBE_DZ, i.e. whether the critic would rather lift.

Only the lift tasks (pick_up_cup, take_lid_off_saucepan) have a grasp point and a lift to trace.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sim  # noqa: E402
from sim.evaluation import CAMERA, EPISODE_STEPS, HELD_OUT_SEED_BASE, render_scale, state_index  # noqa: E402
from sim.privileged import privileged_state  # noqa: E402
from sim.tasks.base import LIFT_SUCCESS_M  # noqa: E402

LIFT_TASKS = ('pick_up_cup', 'take_lid_off_saucepan')
REACH_M = 0.03                 # "came to the grasp point": within 3 cm of it
STOPPED_M = 0.001              # "stopped": under 1 mm of TCP motion per step over the last STOPPED_STEPS
STOPPED_STEPS = 10
PROBE_DZ = (-0.5, 0.3, 1.0)


@dataclass
class Trace:
    seed: int
    success: bool
    steps: int
    closest_m: float           # closest approach of the TCP to the grasp point
    max_lift_m: float          # highest the object rose while held
    held_ever: bool
    held_at_end: bool
    last_motion_m: float       # mean TCP motion per step over the last STOPPED_STEPS steps
    final_action: list[float]
    critic: dict[str, float] | None = None      # --critic: Q at the last state, the policy's action and dz variants

    @property
    def mode(self) -> str:
        if self.success:
            return 'success'
        if self.closest_m > REACH_M:
            return 'never reached'
        if not self.held_ever:
            return 'reached, no grasp'
        if not self.held_at_end:
            return 'dropped'
        if self.last_motion_m < STOPPED_M:
            return 'stalled lifting'
        return 'moving'


def trace_episode(env, runtime, seed: int, index: np.ndarray) -> tuple[Trace, dict[str, np.ndarray]]:
    """The episode's trace and its last observation."""
    obs, info = env.reset(seed=seed)
    embedding = runtime.embed_instruction(info['instruction'])
    runtime.reset()
    scene = env.unwrapped.scene
    task, arm = scene.task, scene.arm
    tcp = [arm.ee_position().copy()]
    closest, max_lift, held_ever, held, done, action = np.inf, 0.0, False, False, False, np.zeros(4)
    while not done:
        action = runtime.act(obs['image_front'], obs['state'][index], embedding,
                             {c: obs[f'image_{c}'] for c in runtime.manifest.cameras[1:]})
        obs, _, terminated, truncated, info = env.step(action)
        tcp.append(arm.ee_position().copy())
        held = task.held(arm)
        closest = min(closest, float(np.linalg.norm(tcp[-1] - task.grasp_point())))
        max_lift = max(max_lift, task.lifted() if held else 0.0)
        held_ever = held_ever or held
        done = bool(info['success']) or terminated or truncated
    motion = np.linalg.norm(np.diff(np.array(tcp[-STOPPED_STEPS - 1:]), axis=0), axis=1)
    return Trace(int(seed), bool(info['success']), len(tcp) - 1, closest, max_lift, held_ever, held,
                 float(motion.mean()), np.round(np.asarray(action, dtype=float), 2).tolist()), obs


def critic_probe(agent, obs: dict[str, np.ndarray], embedding: np.ndarray, action: np.ndarray,
                 privileged: np.ndarray) -> dict[str, float]:
    """Q (min of two heads) at `obs` of `action` and of it with dz = each of PROBE_DZ (`privileged`: the scene's
    sim.privileged state, which a finetune.privileged_critic run's critic also takes)."""
    import torch
    from training.agent.networks import images_to_input
    with torch.no_grad():
        images = [torch.from_numpy(np.ascontiguousarray(obs[f'image_{c}']))[None] for c in agent.config.cameras]
        features = agent.encoder(images_to_input(images))
        state = torch.from_numpy(np.asarray(obs['state'], np.float32))[None]
        instruction = torch.from_numpy(np.asarray(embedding, np.float32))[None]
        extra = torch.from_numpy(privileged)[None] if agent.config.privileged_dim else None
        variants = {'policy': np.asarray(action, np.float32)}
        for dz in PROBE_DZ:
            variants[f'dz={dz:+.1f}'] = np.append(action[:2], [dz, action[3]]).astype(np.float32)
        return {name: round(float(torch.min(*agent.critic(features, state, instruction,
                                                          torch.from_numpy(a)[None], extra)[:2])), 4)
                for name, a in variants.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('bundle', type=Path)
    p.add_argument('--task', choices=LIFT_TASKS, default='take_lid_off_saucepan')
    p.add_argument('--episodes', type=int, default=30)
    p.add_argument('--seed-base', type=int, default=HELD_OUT_SEED_BASE)
    p.add_argument('--json', action='store_true', help='one JSON object instead of the table')
    p.add_argument('--critic', type=Path, default=None, metavar='RUN',
                   help="ask this finetuning run's critic about each stalled lift (torch)")
    args = p.parse_args()
    agent = None
    if args.critic is not None:                  # torch before onnxruntime and the renderer: the other order crashed
        from training.runs import load_agent
        agent = load_agent(args.critic)[0]
    from models.bundle import BundleError
    from models.runtime import PolicyRuntime
    try:
        runtime = PolicyRuntime.load(args.bundle, threads=1)
    except BundleError as error:
        p.error(str(error))
    size = tuple(runtime.manifest.image_size)
    env = sim.make(args.task, image_size=size, randomize=True,
                   cameras=tuple(dict.fromkeys((CAMERA, *runtime.manifest.cameras))),
                   render_scale=render_scale(max(size)), max_episode_steps=EPISODE_STEPS, terminate_on_success=True)
    traces = [traced(env, runtime, args.seed_base + k, agent) for k in range(args.episodes)]
    env.close()
    modes = Counter(t.mode for t in traces)
    if args.json:
        print(json.dumps({'bundle': str(args.bundle), 'task': args.task, 'modes': dict(modes),
                          'episodes': [{**asdict(t), 'mode': t.mode} for t in traces]}))
    else:
        print_traces(traces, modes)


def traced(env: Any, runtime: Any, seed: int, agent: Any | None) -> Trace:
    """One held-out episode's trace; a stalled lift also with the critic's view of its last state (--critic)."""
    trace, last = trace_episode(env, runtime, seed, state_index(runtime.manifest))
    if agent is not None and trace.mode == 'stalled lifting':
        embedding = runtime.embed_instruction(env.unwrapped.instruction)
        trace.critic = critic_probe(agent, last, embedding, np.asarray(trace.final_action, np.float32),
                                    privileged_state(env.unwrapped.scene))
    return trace


def print_traces(traces: list[Trace], modes: Counter) -> None:
    for k, t in enumerate(traces):
        if not t.success:
            print(f'scene {k:3d}  {t.mode:18s} closest {t.closest_m * 100:5.1f} cm  '
                  f'lifted {t.max_lift_m * 100:4.1f} cm (success at {LIFT_SUCCESS_M * 100:.0f})  '
                  f'last motion {t.last_motion_m * 1000:5.1f} mm/step  '
                  f'final action {t.final_action}' + (f'  Q {t.critic}' if t.critic else ''))
    print(f'{modes["success"]}/{len(traces)} succeeded; failures: '
          + ', '.join(f'{n} {mode}' for mode, n in modes.most_common() if mode != 'success'))


if __name__ == '__main__':
    main()

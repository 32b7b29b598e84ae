"""How much a trained run's critic depends on the action (not a test): a diagnosis of policies that saturate.

For the states of stored replay episodes (the first: a demonstration when the run had prefill_expert_episodes,
and the last), prints Q of the stored action, of the policy's action and of its sign (the saturated corner),
and the spread of Q over random actions next to Q's level and its spread across states. A critic whose action
spread is a tiny fraction of its level gives the actor only noise to follow.

    python experiments/critic_probe.py RUN [--step N] [--actions 64]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.agent.networks import images_to_input  # noqa: E402
from training.replay import EpisodeReplay  # noqa: E402
from training.runs import load_agent  # noqa: E402


def q_min(agent, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
          action: torch.Tensor) -> torch.Tensor:
    return torch.min(*agent.critic(features, state, instruction, action))


@torch.no_grad()
def probe(agent, episode: dict[str, np.ndarray], actions: int, rng: np.random.Generator) -> dict[str, float]:
    images = torch.from_numpy(episode['image_front'][:-1])
    state = torch.from_numpy(episode['state'][:-1])
    instruction = torch.from_numpy(np.repeat(episode['instruction_embedding'][None], len(state), 0))
    features = agent.encoder(images_to_input([images]))
    policy = agent.actor(features, state, instruction)
    stored = q_min(agent, features, state, instruction, torch.from_numpy(episode['action']))
    chosen = q_min(agent, features, state, instruction, policy)
    random_actions = torch.from_numpy(rng.uniform(-1, 1, (actions, 4)).astype(np.float32))
    spread = torch.stack([q_min(agent, features, state, instruction, a.expand(len(state), 4))
                          for a in random_actions])
    return {'return': float(episode['reward'].sum()), 'q_stored': stored.mean().item(),
            'q_policy': chosen.mean().item(),
            'q_corner': q_min(agent, features, state, instruction, torch.sign(policy)).mean().item(),
            'policy_above_stored': (chosen >= stored).float().mean().item(),
            'action_spread': (spread.max(0).values - spread.min(0).values).mean().item(),
            'state_spread': spread.mean(0).std().item(), '|policy action|': policy.abs().mean().item()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('run', type=Path, help='a lamp-train run directory')
    parser.add_argument('--step', type=int, default=None, help='checkpoint step (default: the newest)')
    parser.add_argument('--actions', type=int, default=64, help='random actions per state (default 64)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent, config, _, step = load_agent(args.run, args.step)
    replay = EpisodeReplay(args.run / 'replay', config.replay.capacity, 2, ('front',), config.agent.n_step)
    if not replay.episodes:
        raise SystemExit(f'{args.run}: no replay episodes')
    rng = np.random.default_rng(0)
    print(f'{args.run} at step {step}')
    for label, record in (('first episode', replay.episodes[0]), ('last episode', replay.episodes[-1])):
        numbers = probe(agent, replay.load(record), args.actions, rng)
        print(f'  {label}: ' + ', '.join(f'{k} {v:.2f}' for k, v in numbers.items()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

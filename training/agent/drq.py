"""DrQ-v2 (Yarats et al. 2021) with a Plan2Explore-style novelty ensemble: LAMP's agent, model-free.

Why model-free: LAMP's DreamerV2 + MAE world model does not learn on a 2-core CPU in hours; DrQ-v2 does
(docs/training.md has the measurements). What carries over from LAMP: the instruction embedding appended to
the agent's state, the reward r = extr_scale * r_extrinsic + intr_scale * disagreement (pretraining 0.1 / 0.9,
finetuning 1 / 0), 10 one-step latent predictors for the disagreement, the critic linear probe.

update(batch) takes windows of n_step transitions from replay; batch arrays (numpy):

    image_<camera>  uint8 [B, n+1, H, W, 3]   frames t .. t+n
    state           float32 [B, n+1, S]
    action          float32 [B, n, 4]          actions t .. t+n-1
    reward          float32 [B, n]             extrinsic rewards of those transitions
    instruction     float32 [B, E]             the episode's instruction embedding
    terminal        bool [B]     (optional)    the window ends the episode at success: no bootstrap after it
    demo            bool [B]     (optional)    the row comes from a demonstration: the BC term's rows
    privileged      float32 [B, n+1, P]        with agent.privileged_dim P: the simulator's privileged state
                                               (sim.privileged), the critic's alone (asymmetric actor-critic)

With `reference_actor` (IBRL, Hu et al. 2023) a frozen copy of the starting policy (`reset_reference` after the
start's weights are loaded) proposes an action beside the actor's when exploring and in the TD target, and the
critic takes the better of the two: the agent acts at least as well as its start while the critic learns, and
the target never bootstraps from an actor still worse than it. The deterministic policy (evaluation, export)
is the actor alone.

Finetuning from demonstrations (RLPD, Ball et al. 2023, with a BC term as TD3+BC's): layer-normed Q heads,
the actor's loss -Q + bc(t) * |pi(o) - a_demo|^2 on the demo rows (the same term also shapes the encoder, so a
fresh critic cannot wash out the features an imitation start relies on), and a critic warm-up during which the
actor waits. All of it is off at the defaults (pretraining, older runs).

With `recon_weight` a decoder reconstructs frame t's input from the encoder's features (SAC-AE, Yarats et al.
2019) and its loss joins the critic's step: pretraining then shapes the encoder by what the images show, not
only by what the pretraining reward needs (LAMP's world model learns by reconstruction). Off by default.
"""
from __future__ import annotations

import copy
import importlib
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.augment import random_shift
from training.agent.config import AgentConfig
from training.agent.networks import Critic, Decoder, images_to_input, recon_target
from training.agent.novelty import DisagreementEnsemble
from training.policy import PolicyNet

# torch imports torch._dynamo (and with it triton) lazily, at the first optimizer a process builds. Importing
# triton after MuJoCo has created its EGL context segfaults (measured: mujoco 4.0, torch 2.14.1, Mesa EGL), so
# it is imported here, before any scene can exist in a process that trains.
importlib.import_module('torch._dynamo')


def clipped_sample(mean: torch.Tensor, std: float, clip: float) -> torch.Tensor:
    """mean + clipped Gaussian noise, kept in [-1, 1] with a straight-through gradient (DrQ-v2)."""
    noise = (torch.randn_like(mean) * std).clamp(-clip, clip)
    action = mean + noise
    return action - action.detach() + action.detach().clamp(-1.0, 1.0)


class DrQAgent:
    """act(obs, instruction_embedding, state=None, explore) -> (action, state); update(batch) -> metrics."""

    def __init__(self, config: AgentConfig, seed: int = 0, device: str | torch.device = 'cpu') -> None:
        """Networks initialized from `seed` (the caller's RNG is untouched), on `device` ('cpu', 'cuda', ...)."""
        self.config = config
        self.device = torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = PolicyNet(config)
            self.encoder, self.actor = self.policy.encoder, self.policy.actor
            self.critic = Critic(config, self.encoder.output_dim)
            self.ensemble = DisagreementEnsemble(config.feature_dim + config.action_dim, config.feature_dim,
                                                 config.ensemble_hidden, config.ensemble_size)
            self.decoder = Decoder(config, self.encoder.output_dim) if config.recon_weight else None
        for module in (self.encoder, self.actor, self.critic, self.ensemble, self.decoder):
            if module is not None:
                module.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.reference = copy.deepcopy(self.policy).requires_grad_(False) if config.reference_actor else None
        decoder = [] if self.decoder is None else list(self.decoder.parameters())   # learns in the critic's step
        self.critic_opt = torch.optim.Adam([*self.encoder.parameters(), *self.critic.parameters(), *decoder],
                                           lr=config.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.lr)
        self.ensemble_opt = torch.optim.Adam(self.ensemble.parameters(), lr=config.ensemble_lr)
        self.updates = 0
        self.critic_linear_probe = False

    # --- the interface ---------------------------------------------------------------------------
    @torch.inference_mode()
    def act(self, obs: Mapping[str, np.ndarray], instruction_embedding: np.ndarray, state: Any = None,
            explore: bool = False) -> tuple[np.ndarray, Any]:
        """One observation (image_<camera> uint8 [H, W, 3], state float32 [S]) -> action float32 [4] in [-1, 1].

        explore: add the scheduled Gaussian noise (training); otherwise the mean action (evaluation, export).
        The policy is not recurrent: `state` comes back unchanged (None)."""
        images = [self._tensor(np.ascontiguousarray(obs[f'image_{c}']))[None] for c in self.config.cameras]
        features = self.encoder(images_to_input(images))
        robot_state = self._tensor(np.asarray(obs['state'], np.float32))[None]
        instruction = self._tensor(np.asarray(instruction_embedding, np.float32))[None]
        mean = self.actor(features, robot_state, instruction)
        if explore:
            noise = torch.randn_like(mean) * self.config.std(self.updates)
            noise[:, -1] *= self.config.gripper_noise
            mean = (mean + noise).clamp(-1.0, 1.0)
            if self.reference is not None:
                proposal = self.reference(*images[:1], robot_state, instruction, *images[1:])
                mean = self._better(features, robot_state, instruction, mean, proposal, self.critic)
        return mean[0].cpu().numpy().astype(np.float32), state

    def update(self, batch: Mapping[str, np.ndarray]) -> dict[str, float]:
        cfg = self.config
        n = cfg.n_step
        x, features, later = self._encode(batch)
        state, action = self._tensor(batch['state']), self._tensor(batch['action'])
        privileged = self._tensor(batch['privileged'])[:, [0, n]] if cfg.privileged_dim else None
        now, then = (None, None) if privileged is None else (privileged[:, 0], privileged[:, 1])
        instruction, extrinsic = self._tensor(batch['instruction']), self._tensor(batch['reward'])
        std = cfg.std(self.updates)
        metrics: dict[str, float] = {'extrinsic_reward': float(extrinsic.mean()), 'std': std}

        reward = self._reward(extrinsic, features, later, action, metrics)
        discounts = cfg.gamma ** torch.arange(n, dtype=torch.float32, device=self.device)
        returns = (reward * discounts).sum(dim=1)
        alive = 1.0 - self._tensor(batch['terminal']).float() if 'terminal' in batch else 1.0
        target = self._td_target(x[:, -1], later[:, -1], state[:, n], instruction, returns, alive, std, then)
        qs = self.critic(features, state[:, 0], instruction, action[:, 0], now)
        critic_loss = sum(F.mse_loss(q, target) for q in qs)
        demo = self._tensor(batch['demo']) if 'demo' in batch else None
        bc_weight = cfg.bc(self.updates) if demo is not None and bool(demo.any()) else 0.0
        encoder_bc = self._bc_loss(features, state, instruction, action, demo) if bc_weight else 0.0
        self.critic_opt.zero_grad(set_to_none=True)
        (critic_loss + bc_weight * encoder_bc + self._recon_loss(x[:, 0], features, metrics)).backward()
        self.critic_opt.step()

        actor_loss = torch.zeros(())
        if self.updates >= cfg.critic_warmup_updates:
            actor_loss = self._actor_loss(features.detach(), state, instruction, action, demo, std, bc_weight,
                                          metrics, now)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
        self._soft_update_target()
        self.updates += 1
        metrics.update(critic_loss=critic_loss.item(), actor_loss=actor_loss.item(), q=qs[0].mean().item(),
                       target_q=target.mean().item(), reward=reward.mean().item())
        return metrics

    def _encode(self, batch: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(augmented encoder input [B, frames used, ...], features of frame t (with gradient), features of the
        later frames used (without)). Frames t and t+n feed the critic; the ones between only the novelty
        ensemble: they are encoded only when it learns."""
        cfg = self.config
        n = cfg.n_step
        b, frames = batch['state'].shape[:2]
        if frames != n + 1:
            raise ValueError(f'batch holds windows of {frames} frames; n_step {n} needs {n + 1}')
        used = list(range(n + 1)) if cfg.intr_scale > 0 else [0, n]
        x = images_to_input([self._tensor(self.augment(batch[f'image_{c}'][:, used])) for c in cfg.cameras])
        x = x.view(b, len(used), *x.shape[1:])
        features = self.encoder(x[:, 0])
        with torch.no_grad():
            later = self.encoder(x[:, 1:].flatten(0, 1)).view(b, len(used) - 1, -1)
        return x, features, later

    def _recon_loss(self, image: torch.Tensor, features: torch.Tensor, metrics: dict[str, float]
                    ) -> torch.Tensor | float:
        """recon_weight * the decoder's mean squared error on frame t's (augmented) input; 0 without a decoder."""
        if self.decoder is None:
            return 0.0
        loss = F.mse_loss(self.decoder(features), recon_target(image))
        metrics.update(recon_loss=loss.item())
        return self.config.recon_weight * loss

    def _reward(self, extrinsic: torch.Tensor, features: torch.Tensor, later: torch.Tensor, action: torch.Tensor,
                metrics: dict[str, float]) -> torch.Tensor:
        """Per transition [B, n]: extr_scale * extrinsic - step_penalty, + intr_scale * the novelty ensemble's
        disagreement (which learns here) when novelty is on."""
        cfg = self.config
        reward = cfg.extr_scale * extrinsic - cfg.step_penalty
        if cfg.intr_scale > 0:
            intrinsic = self._update_ensemble(features.detach(), later, action, metrics)
            reward = reward + cfg.intr_scale * intrinsic
        return reward

    @torch.no_grad()
    def _td_target(self, last_image: torch.Tensor, last_features: torch.Tensor, last_state: torch.Tensor,
                   instruction: torch.Tensor, returns: torch.Tensor, alive: torch.Tensor | float, std: float,
                   privileged: torch.Tensor | None) -> torch.Tensor:
        """The n-step target: the discounted rewards, plus (unless the window ended the episode) the target
        critic at the window's last frame under the actor's noisy action (or IBRL's reference proposal where the
        target critic values it higher), the min over two random heads (REDQ with more than 2)."""
        cfg = self.config
        next_action = clipped_sample(self.actor(last_features, last_state, instruction), std, cfg.std_clip)
        if self.reference is not None:
            proposal = self.reference.actor(self.reference.encoder(last_image), last_state, instruction)
            next_action = self._better(last_features, last_state, instruction, next_action, proposal,
                                       self.critic_target)
        target_qs = self.critic_target(last_features, last_state, instruction, next_action, privileged)
        pair = torch.randperm(len(target_qs))[:2].tolist() if len(target_qs) > 2 else [0, 1]
        return returns + alive * cfg.gamma ** cfg.n_step * torch.min(target_qs[pair[0]], target_qs[pair[1]])

    @torch.no_grad()
    def _soft_update_target(self) -> None:
        for target_p, p in zip(self.critic_target.parameters(), self.critic.parameters()):
            target_p.lerp_(p, self.config.critic_tau)

    @staticmethod
    def _better(features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor, action: torch.Tensor,
                proposal: torch.Tensor, critic: Critic) -> torch.Tensor:
        """Per row, whichever of `action` and the reference's `proposal` the critic values higher."""
        q_action = torch.min(*critic(features, state, instruction, action)[:2])
        q_proposal = torch.min(*critic(features, state, instruction, proposal)[:2])
        return torch.where((q_proposal > q_action)[:, None], proposal, action)

    def reset_reference(self) -> None:
        """The reference becomes a frozen copy of the policy as it is now (the finetuning start)."""
        if self.reference is not None:
            self.reference.load_state_dict(self.policy.state_dict())

    def _bc_loss(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor, action: torch.Tensor,
                 demo: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the mean action against the demonstrated one, over the demo rows."""
        mean = self.actor(features[demo], state[demo, 0], instruction[demo])
        return F.mse_loss(mean, action[demo, 0])

    def _actor_loss(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                    action: torch.Tensor, demo: torch.Tensor | None, std: float, bc_weight: float,
                    metrics: dict[str, float], privileged: torch.Tensor | None = None) -> torch.Tensor:
        """DrQ-v2's -min(Q1, Q2) (the heads' mean with more than 2), + bc * BC on the demo rows. Not TD3+BC's
        -Q / mean|Q|: with a shaped reward Q carries a large baseline, and dividing by it left the actor no gradient
        from the critic (measured: push_button, Q ~ 100, no change in 7500 steps)."""
        if self.config.actor_objective == 'crr':
            return self._crr_loss(features, state, instruction, action, demo, bc_weight, metrics, privileged)
        policy_action = clipped_sample(self.actor(features, state[:, 0], instruction), std, self.config.std_clip)
        qs = self.critic(features, state[:, 0], instruction, policy_action, privileged)
        q = torch.min(*qs) if len(qs) == 2 else torch.stack(qs).mean(dim=0)     # RLPD: the ensemble's mean
        if not bc_weight:
            return -q.mean()
        bc = (self._q_filtered_bc_loss(features, state, instruction, action, demo, metrics, privileged)
              if self.config.bc_q_filter else self._bc_loss(features, state, instruction, action, demo))
        metrics.update(bc_loss=bc.item(), bc_weight=bc_weight)
        return -q.mean() + bc_weight * bc

    def _q_filtered_bc_loss(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                            action: torch.Tensor, demo: torch.Tensor, metrics: dict[str, float],
                            privileged: torch.Tensor | None = None) -> torch.Tensor:
        """The BC term on the demo rows whose action the critic values above the actor's own mean action (Nair et
        al. 2018's Q-filter): self-imitated successes that hovered before they grasped teach their grasp, not
        their hovering."""
        f, s, i, a = features[demo], state[demo, 0], instruction[demo], action[demo, 0]
        mean = self.actor(f, s, i)
        better = self._critic_prefers(f, s, i, a, mean, None if privileged is None else privileged[demo])
        metrics.update(bc_kept=float(better.mean()))
        return (better * ((mean - a) ** 2).mean(dim=1)).sum() / better.sum().clamp(min=1.0)

    def _critic_prefers(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor,
                        taken: torch.Tensor, own: torch.Tensor, privileged: torch.Tensor | None = None
                        ) -> torch.Tensor:
        """1.0 per row where the critic (min of two heads) values `taken` above `own`, else 0.0; no gradient."""
        with torch.no_grad():
            return (torch.min(*self.critic(features, state, instruction, taken, privileged)[:2])
                    > torch.min(*self.critic(features, state, instruction, own, privileged)[:2])).float()

    def _crr_loss(self, features: torch.Tensor, state: torch.Tensor, instruction: torch.Tensor, action: torch.Tensor,
                  demo: torch.Tensor | None, bc_weight: float, metrics: dict[str, float],
                  privileged: torch.Tensor | None = None) -> torch.Tensor:
        """CRR's binary filter (Wang et al. 2020) for a deterministic actor: regress onto the batch's actions where
        the critic values them above the actor's own (advantage > 0), demo rows or the robot's; the actor never
        follows the critic's gradient into actions no data shows. Plus the demo rows' BC term."""
        mean = self.actor(features, state[:, 0], instruction)
        better = self._critic_prefers(features, state[:, 0], instruction, action[:, 0], mean, privileged)
        regression = ((mean - action[:, 0]) ** 2).mean(dim=1)
        loss = (better * regression).sum() / better.sum().clamp(min=1.0)
        metrics.update(crr_kept=float(better.mean()))
        if bc_weight and demo is not None and bool(demo.any()):
            bc = self._bc_loss(features, state, instruction, action, demo)
            metrics.update(bc_loss=bc.item(), bc_weight=bc_weight)
            loss = loss + bc_weight * bc
        return loss

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device, non_blocking=True)

    def augment(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [B, k, H, W, 3] -> uint8 [B * k, H, W, 3], each frame randomly shifted (offsets from torch's RNG)."""
        flat = frames.reshape(-1, *frames.shape[2:])
        pad = self.config.augment_pad
        offsets = torch.randint(0, 2 * pad + 1, (len(flat), 2)).numpy()
        return random_shift(flat, pad, offsets)

    def exportable_policy(self) -> PolicyNet:
        """A CPU copy of the deterministic policy for training.export.export_bundle."""
        return copy.deepcopy(self.policy).cpu().eval()

    def load_policy(self, policy: PolicyNet) -> None:
        """Start from a trained policy (imitation): its encoder and actor weights; the critic stays fresh."""
        self.policy.load_state_dict(policy.state_dict())

    # --- novelty ---------------------------------------------------------------------------------
    def _update_ensemble(self, first: torch.Tensor, later: torch.Tensor, action: torch.Tensor,
                         metrics: dict[str, float]) -> torch.Tensor:
        """Train the heads on (z_t, a_t) -> z_{t+1}; return the disagreement [B, n] of the windows'
        transitions (before this step) as their intrinsic reward."""
        b, n = action.shape[:2]
        with torch.no_grad():
            latent = self.critic.trunk(torch.cat([first[:, None], later], dim=1))         # [B, n+1, F]
        inputs = torch.cat([latent[:, :-1], action], dim=-1)                            # [B, n, F+A]
        intrinsic = self.ensemble.disagreement(inputs.flatten(0, 1)).view(b, n)
        # The heads learn from the first transition of each window: the others are other windows' first.
        loss = self.ensemble.loss(inputs[:, 0], latent[:, 1])
        self.ensemble_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.ensemble_opt.step()
        metrics.update(ensemble_loss=loss.item(), intrinsic_reward=intrinsic.mean().item())
        return intrinsic

    # --- critic linear probe (LAMP's critic_linear_probe) ------------------------------------------
    def reset_critic_output(self, seed: int) -> None:
        """Fresh last layers of both Q heads (LAMP's probe trains a new output layer), copied to the target."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for layer in self.critic.output_layers():
                layer.reset_parameters()
        self.critic_target.load_state_dict(self.critic.state_dict())

    def set_critic_linear_probe(self, on: bool) -> None:
        """Freeze the critic's trunk and hidden layers (only the output layers learn), or unfreeze them.
        The encoder keeps learning through the critic loss, as LAMP's world model keeps learning."""
        self.critic.requires_grad_(not on)
        for layer in self.critic.output_layers():
            layer.requires_grad_(True)
        self.critic_linear_probe = on

    # --- checkpointing -------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        modules = {'encoder': self.encoder, 'actor': self.actor, 'critic': self.critic,
                   'critic_target': self.critic_target, 'ensemble': self.ensemble}
        optional = {'reference': self.reference, 'decoder': self.decoder}
        return {**modules, **{name: m for name, m in optional.items() if m is not None}}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {'critic_opt': self.critic_opt, 'actor_opt': self.actor_opt, 'ensemble_opt': self.ensemble_opt}

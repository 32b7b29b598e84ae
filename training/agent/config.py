"""The agent's hyperparameters, one frozen dataclass (saved in every run's config.yaml)."""
from __future__ import annotations

from dataclasses import dataclass

from lamp_ros.contract import ACTION_DIM

CAMERAS = ('front', 'wrist')


@dataclass(frozen=True)
class AgentConfig:
    # --- observation -------------------------------------------------------------------------------
    image_size: int = 64                          # square camera images, pixels
    cameras: tuple[str, ...] = ('front',)         # 'front', then optionally 'wrist' (channels stacked, one encoder)
    state_dim: int = 4                            # sim.STATE_KEYS
    embedding_dim: int = 384                      # instruction embedding width (MiniLM: 384, DistilBERT: 768)
    language_dim: int = 32                        # the learned projection of the embedding (training/agent/networks)
    action_dim: int = ACTION_DIM

    # --- networks (DrQ-v2 shapes, sized down for a CPU) ----------------------------------------------
    channels: tuple[int, ...] = (16, 32, 32, 32)  # one 3x3 conv per entry (a 16-wide first conv: half the CPU time)
    strides: tuple[int, ...] = (2, 2, 2, 1)
    keypoints: bool = False                       # + spatial-softmax positions of the last conv's channels
    feature_dim: int = 50                         # trunk: Linear -> LayerNorm -> tanh (DrQ-v2's 50)
    hidden_dim: int = 256                         # actor and critic MLPs: two hidden layers
    augment_pad: int = 4                          # random shift of up to this many pixels (DrQ-v2: 4 at 84x84)

    # --- learning ----------------------------------------------------------------------------------
    lr: float = 1e-4                              # actor, critic + encoder (DrQ-v2)
    gamma: float = 0.99
    n_step: int = 3
    critic_tau: float = 0.01                      # target critic Polyak rate
    std_init: float = 1.0                         # exploration noise: linear from std_init to std_final
    std_final: float = 0.1
    std_decay_updates: int = 50_000               # ... over this many updates
    std_clip: float = 0.3                         # noise clip in the actor loss and the target action

    # --- Plan2Explore-style novelty: ensemble of one-step latent predictors --------------------------
    ensemble_size: int = 10                       # LAMP's disag_models
    ensemble_hidden: int = 256
    ensemble_lr: float = 3e-4                     # LAMP's expl_opt lr
    intr_scale: float = 0.0                       # reward = extr_scale * r_extrinsic + intr_scale * disagreement
    extr_scale: float = 1.0                       # (pretraining: 0.9 / 0.1 as LAMP; finetuning: 0 / 1)

    recon_weight: float = 0.0                     # + this weight * the decoder's pixel reconstruction loss in the
                                                  # encoder's update (SAC-AE; LAMP's world model reconstructs); 0: off

    # --- finetuning from demonstrations (RLPD / TD3+BC style; set from FinetuneSettings by training.runs) -----
    critic_layernorm: bool = False                # LayerNorm after each hidden layer of the Q heads (RLPD)
    critic_heads: int = 2                         # Q heads; the target takes the min of 2 drawn at random (RLPD: 10)
    bc_weight: float = 0.0                        # behaviour cloning on the batch's demo rows, beside -Q
    bc_decay_updates: int = 0                     # ... decaying linearly to 0 over this many updates (0: constant)
    bc_q_filter: bool = False                     # the actor's BC only on demo rows whose action the critic values
                                                  # above the actor's own (Nair et al. 2018's Q-filter)
    critic_warmup_updates: int = 0                # the actor waits while the fresh critic learns the start policy
    step_penalty: float = 0.0                     # subtracted from every step's reward: with a success reward,
                                                  # failing states pay for every step, so their Q is grounded
    actor_objective: str = 'q'                    # 'q': DrQ-v2's -Q (+ BC); 'crr': regress onto the batch's
                                                  # actions the critic values above the actor's own (CRR)
    reference_actor: bool = False                 # IBRL: a frozen copy of the starting policy proposes actions
                                                  # beside the actor's, in acting and in the TD target; Q picks
    gripper_noise: float = 1.0                    # exploration noise on the gripper, as a fraction of the motion's
    privileged_dim: int = 0                       # the critic's extra input: the simulator's privileged state
                                                  # (sim.privileged; asymmetric actor-critic); 0: none (a robot)

    def __post_init__(self) -> None:
        problems = [*self._shape_problems(), *self._range_problems()]
        if self.privileged_dim and self.reference_actor:
            problems.append('reference_actor compares Q values while acting, where no privileged state exists: '
                            'it cannot be combined with privileged_dim')
        if problems:
            raise ValueError('AgentConfig: ' + '; '.join(problems))

    def _shape_problems(self) -> list[str]:
        """Cameras, and a conv stack that leaves at least one pixel of the image."""
        problems = []
        cameras = self.cameras
        if not cameras or any(c not in CAMERAS for c in cameras) or len(set(cameras)) != len(cameras):
            problems.append(f'cameras {self.cameras!r} must be distinct names from {CAMERAS}')
        elif cameras[0] != 'front':
            problems.append(f"cameras {self.cameras!r} must start with 'front' (the policy's first image)")
        if len(self.channels) != len(self.strides) or not self.channels:
            problems.append(f'channels {self.channels} and strides {self.strides} must be non-empty and equally long')
        if self.conv_output_size() < 1:
            problems.append(f'image_size {self.image_size} is too small for {len(self.channels)} convs '
                            f'with strides {self.strides}')
        return problems

    def _range_problems(self) -> list[str]:
        """Sizes >= 1, weights and counts >= 0, gamma in (0, 1], enough heads, a known actor objective."""
        positive = ('image_size', 'state_dim', 'embedding_dim', 'language_dim', 'feature_dim', 'hidden_dim', 'n_step',
                    'ensemble_size', 'ensemble_hidden', 'std_decay_updates')
        problems = [f'{name} must be >= 1, got {getattr(self, name)}' for name in positive if getattr(self, name) < 1]
        if self.actor_objective not in ('q', 'crr'):
            problems.append(f"actor_objective {self.actor_objective!r} must be 'q' or 'crr'")
        if self.critic_heads < 2:
            problems.append(f'critic_heads {self.critic_heads}: the target needs at least 2')
        if self.ensemble_size < 2:
            problems.append(f'ensemble_size {self.ensemble_size}: disagreement needs at least 2 heads')
        if not 0 < self.gamma <= 1:
            problems.append(f'gamma {self.gamma} must be in (0, 1]')
        non_negative = ('bc_weight', 'bc_decay_updates', 'critic_warmup_updates', 'gripper_noise', 'privileged_dim',
                        'augment_pad', 'recon_weight')
        return problems + [f'{name} must be >= 0, got {getattr(self, name)}' for name in non_negative
                           if getattr(self, name) < 0]

    def conv_output_size(self) -> int:
        """Side of the last conv feature map (3x3 kernels, no padding)."""
        size = self.image_size
        for stride in self.strides:
            size = (size - 3) // stride + 1
        return size

    def bc(self, updates: int) -> float:
        """Weight of the behaviour-cloning term after `updates` updates."""
        if self.bc_decay_updates == 0:
            return self.bc_weight
        return self.bc_weight * max(0.0, 1.0 - updates / self.bc_decay_updates)

    def std(self, updates: int) -> float:
        """Exploration noise after `updates` updates (DrQ-v2's linear schedule)."""
        mix = min(max(updates / self.std_decay_updates, 0.0), 1.0)
        return (1.0 - mix) * self.std_init + mix * self.std_final

"""Language instructions for the pretraining scene: templates with a [NOUN] slot, per-object synonyms.

As in LAMP, each episode draws one template, cycling through all templates without replacement
before any repeats, and fills [NOUN] with a synonym of the target object's category. Which template
an episode gets is a function of the episode's seed and index (see `template_index`), so a seeded
reset determines its instruction, and consecutive episodes after one seeded reset walk a full cycle.

Prompt styles (for ablations, as in LAMP's prompt studies):
    similar_verbs    40 pick-up/lift phrasings (the default; LAMP's "similar verbs")
    diverse_verbs    40 phrasings with unrelated verbs: touch, push, rotate, ...
    unrelated_nouns  similar_verbs templates, but [NOUN] is an unrelated word (galaxy, democracy, ...)
    nonsense         random pseudo-words of instruction length: language carries no information
    single           one fixed template, "pick up the [NOUN]"
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

INSTRUCTIONS_DIR = Path(__file__).resolve().parent / 'assets' / 'instructions'
NOUN_SLOT = '[NOUN]'
TEMPLATE_STYLES = {'similar_verbs': 'similar_verbs', 'diverse_verbs': 'diverse_verbs',
                   'unrelated_nouns': 'similar_verbs', 'single': 'single'}
PROMPT_STYLES = (*TEMPLATE_STYLES, 'nonsense')
_SYLLABLES = ('ka', 'lo', 'mi', 'tre', 'vun', 'sho', 'pli', 'dax', 'or', 'en', 'zu', 'fep', 'gri', 'wob',
              'nal', 'sek', 'tu', 'bri', 'mop', 'quu', 'ras', 'yel', 'dri', 'ob')


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a text file; `#` starts a comment line."""
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith('#')]
    if not lines:
        raise ValueError(f'{path} holds no lines')
    return lines


@dataclass(frozen=True)
class InstructionConfig:
    prompt_style: str = 'similar_verbs'
    template_file: Path | None = None        # your own templates (each with [NOUN]); overrides the style's
    synonym_dir: Path | None = None          # folder of <category>.txt synonym lists; default: ours

    def __post_init__(self) -> None:
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f'unknown prompt_style {self.prompt_style!r}; choose one of {PROMPT_STYLES}')


def template_index(count: int, base_seed: int, episode: int) -> int:
    """The template of episode `episode` after a reset seeded with `base_seed`: a fresh random
    permutation of all `count` templates per cycle of `count` episodes (no repeats within a cycle)."""
    cycle, position = divmod(episode, count)
    order = np.random.default_rng([base_seed, cycle, 7919]).permutation(count)
    return int(order[position])


class InstructionSampler:
    def __init__(self, config: InstructionConfig = InstructionConfig()) -> None:
        self.config = config
        style = config.prompt_style
        if config.template_file is not None:
            self.templates = read_lines(config.template_file)
        elif style == 'nonsense':
            self.templates = []
        else:
            self.templates = read_lines(INSTRUCTIONS_DIR / 'templates' / f'{TEMPLATE_STYLES[style]}.txt')
        missing = [t for t in self.templates if NOUN_SLOT not in t]
        if missing:
            raise ValueError(f'templates without a {NOUN_SLOT} slot: {missing[:3]}')
        self.unrelated_nouns = read_lines(INSTRUCTIONS_DIR / 'unrelated_nouns.txt')
        self.synonym_dir = Path(config.synonym_dir) if config.synonym_dir else INSTRUCTIONS_DIR / 'synonyms'

    def synonyms(self, category: str) -> list[str]:
        path = self.synonym_dir / f'{category}.txt'
        if path.is_file():
            return read_lines(path)
        if category.replace('_', '').isalpha():                     # a readable folder name is its own noun
            return [category.replace('_', ' ')]
        raise FileNotFoundError(f'no synonym list for object category {category!r}: write {path} '
                                f'(one name per line) or set synonym_dir')

    def instruction(self, category: str, base_seed: int, episode: int, rng: np.random.Generator) -> str:
        """The episode's instruction about an object of `category`; `rng` picks the synonym."""
        if self.config.prompt_style == 'nonsense':
            words = int(rng.integers(3, 8))
            return ' '.join(''.join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(words))
        template = self.templates[template_index(len(self.templates), base_seed, episode)]
        if self.config.prompt_style == 'unrelated_nouns':
            noun = self.unrelated_nouns[int(rng.integers(len(self.unrelated_nouns)))]
        else:
            names = self.synonyms(category)
            noun = names[int(rng.integers(len(names)))]
        return template.replace(NOUN_SLOT, noun)

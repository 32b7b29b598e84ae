"""Instruction templates, synonyms and prompt styles (sim/instructions.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.instructions import (INSTRUCTIONS_DIR, NOUN_SLOT, PROMPT_STYLES, InstructionConfig, InstructionSampler,
                              read_lines, template_index)
from sim.meshes import MeshLibrary
from sim.config import DEFAULT_MESH_DIR


def test_shipped_templates_and_synonyms_are_rich_enough() -> None:
    for style in ('similar_verbs', 'diverse_verbs'):
        templates = read_lines(INSTRUCTIONS_DIR / 'templates' / f'{style}.txt')
        assert len(templates) >= 40 and len(set(templates)) == len(templates)
        assert all(NOUN_SLOT in t for t in templates)
    sampler = InstructionSampler()
    for category in MeshLibrary(DEFAULT_MESH_DIR).categories:     # every shipped object has synonyms
        assert len(sampler.synonyms(category)) >= 5
    assert len(read_lines(INSTRUCTIONS_DIR / 'unrelated_nouns.txt')) >= 30


@pytest.mark.parametrize('count', [1, 7, 40])
def test_templates_cycle_without_replacement(count: int) -> None:
    for cycle in range(3):
        indices = [template_index(count, base_seed=5, episode=cycle * count + i) for i in range(count)]
        assert sorted(indices) == list(range(count))
    assert template_index(count, 5, 3) == template_index(count, 5, 3)


def test_cycles_differ_between_base_seeds_and_cycles() -> None:
    order = [template_index(40, 1, i) for i in range(40)]
    assert order != [template_index(40, 2, i) for i in range(40)]
    assert order != [template_index(40, 1, 40 + i) for i in range(40)]


def instructions(style: str, count: int = 40) -> list[str]:
    sampler = InstructionSampler(InstructionConfig(prompt_style=style))
    rng = np.random.default_rng(0)
    return [sampler.instruction('mug', base_seed=3, episode=i, rng=rng) for i in range(count)]


def test_similar_verbs_fill_the_slot_with_a_synonym() -> None:
    synonyms = InstructionSampler().synonyms('mug')
    made = instructions('similar_verbs')
    assert all(NOUN_SLOT not in i for i in made)
    assert all(any(name in i for name in synonyms) for i in made)
    assert len(set(made)) > 30


def test_unrelated_nouns_never_name_the_object() -> None:
    unrelated = read_lines(INSTRUCTIONS_DIR / 'unrelated_nouns.txt')
    for instruction in instructions('unrelated_nouns'):
        assert any(noun in instruction for noun in unrelated)
        assert 'mug' not in instruction and 'cup' not in instruction


def test_nonsense_and_single_styles() -> None:
    templates = read_lines(INSTRUCTIONS_DIR / 'templates' / 'similar_verbs.txt')
    nonsense = instructions('nonsense', 10)
    assert len(set(nonsense)) == 10
    assert not any(t.split(NOUN_SLOT)[0].strip() and t.split(NOUN_SLOT)[0] in n for t in templates for n in nonsense)
    assert all(i.startswith('pick up the ') for i in instructions('single', 5))
    assert set(PROMPT_STYLES) == {'similar_verbs', 'diverse_verbs', 'unrelated_nouns', 'nonsense', 'single'}


def test_user_templates_and_synonyms(tmp_path: Path) -> None:
    (tmp_path / 'templates.txt').write_text('# my prompts\nhand me the [NOUN]\ngive me the [NOUN] now\n')
    synonyms = tmp_path / 'synonyms'
    synonyms.mkdir()
    (synonyms / '03797390.txt').write_text('mug\ncoffee mug\n')                 # a ShapeNet synset folder name
    sampler = InstructionSampler(InstructionConfig(template_file=tmp_path / 'templates.txt', synonym_dir=synonyms))
    made = {sampler.instruction('03797390', 0, i, np.random.default_rng(i)) for i in range(6)}
    assert made <= {'hand me the mug', 'hand me the coffee mug', 'give me the mug now', 'give me the coffee mug now'}
    assert sampler.synonyms('teapot') == ['teapot']                             # a readable name is its own noun
    with pytest.raises(FileNotFoundError, match='04401088'):
        sampler.synonyms('04401088')


def test_bad_instruction_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='prompt_style'):
        InstructionConfig(prompt_style='poetry')
    (tmp_path / 't.txt').write_text('pick it up\n')
    with pytest.raises(ValueError, match=r'\[NOUN\]'):
        InstructionSampler(InstructionConfig(template_file=tmp_path / 't.txt'))

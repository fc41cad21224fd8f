"""``folder_digest``: the build cache's folder and the registry's copy of it are the same model; one changed byte,
one renamed or one extra file is another."""

from __future__ import annotations

import os
import shutil

from llmship.models.files import folder_digest


def _model(folder):
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gemma3_text"}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4096)
    (folder / "sub" / "tokenizer.json").write_text("{}")
    (folder / ".cache").write_text("hidden: not part of the model")
    return folder


def test_a_copy_is_the_same_model_and_any_change_is_not(tmp_path):
    built = _model(tmp_path / "built")
    copy = tmp_path / "registry" / "hf"
    shutil.copytree(built, copy)
    os.utime(copy / "model.safetensors", (1, 1))  # a copy's times differ: they do not count
    (copy / ".cache").write_text("another hidden file")
    assert folder_digest(built) == folder_digest(copy)

    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[1000] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(weights))
    assert folder_digest(copy) != folder_digest(built)

    shutil.rmtree(copy)
    shutil.copytree(built, copy)
    (copy / "sub" / "tokenizer.json").rename(copy / "sub" / "vocab.json")
    assert folder_digest(copy) != folder_digest(built)
    (copy / "sub" / "vocab.json").rename(copy / "sub" / "tokenizer.json")
    (copy / "extra.txt").write_text("")
    assert folder_digest(copy) != folder_digest(built)

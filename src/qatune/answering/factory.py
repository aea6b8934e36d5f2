"""The one way to open a model for answering: an ONNX export through onnxruntime, anything else through torch.

The backends import the seam (`answering.answerer`), never this factory, so there is no cycle; each
backend is imported only when chosen, so answering from an export never imports torch.
"""

from __future__ import annotations

from qatune.answering.answerer import SpanAnswerer, WindowLimit
from qatune.data.windows import WindowConfig


def open_answerer(
    model: str,
    *,
    window: WindowConfig | None = None,
    seed: int = 0,
    max_context_chars: int | None = None,
    dtype: str = "float32",
    batch_size: int | None = None,
    max_windows: WindowLimit | None = None,
) -> tuple[SpanAnswerer, str]:
    """The answerer for `model` and its backend's name: an exported folder answers with onnxruntime
    alone (fast start), anything else through torch with `dtype` weights. `window` defaults to the
    model's own settings, `batch_size` (windows a forward pass) to the backend's; `max_windows` bounds
    the work of one query (None: unbounded)."""
    from qatune.answering.onnx_backend import OnnxAnswerer, is_exported

    sized = {} if batch_size is None else {"batch_size": batch_size}
    answerer: SpanAnswerer
    if is_exported(model):
        answerer, backend = (
            OnnxAnswerer(model, window=window, max_context_chars=max_context_chars, **sized),
            "onnxruntime",
        )
    else:
        from qatune.answering.torch_backend import Answerer

        answerer = Answerer(model, window, seed=seed, max_context_chars=max_context_chars, dtype=dtype, **sized)
        backend = "torch"
    answerer.max_windows = max_windows
    return answerer, backend

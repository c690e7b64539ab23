"""AtMan explanations by attention manipulation.

The planning, neighbourhoods, scoring and reports are the C++ library's
(atman._core); an engine is any object with

    base_pass(seq) -> m CE values (nats) of seq.targets
    perturbed_pass(seq, batch) -> batch rows x m CE values, row r with
        batch.key_factors[r] acting on every attention row's pre-softmax scores

and optionally input_embeddings(seq) -> T x dim (conceptual suppression).
"""

from ._core import *  # noqa: F401,F403
from ._core import Error, InvalidArgument, NumericError, Cancelled  # noqa: F401


def byte_offsets(text, char_offsets):
    """Character offsets [start, end) into text (Hugging Face tokenizers give
    these) as byte offsets into its UTF-8 encoding, which make_units takes."""
    byte_at = [0]
    for ch in text:
        byte_at.append(byte_at[-1] + len(ch.encode("utf-8")))
    return [(byte_at[start], byte_at[end]) for start, end in char_offsets]

"""The detection result and the binomial false-positive bound behind "detected".

Blind detection decodes *some* payload from any input, marked or not, so the decoded bits alone prove
nothing. What proves the mark is how well the raw chips agree with the decoded payload re-encoded:

- Each carrier slot's chip was multiplied by a keyed pseudo-random sign (``ecc.SpreadCode``). On content
  that never carried this key's mark, the sign of every descrambled chip is a fair coin, independent of
  the others, whatever the content (the content cannot correlate with a secret keyed sequence). A chip
  that reads exactly 0 is counted as a mismatch, which only lowers the match count.
- For ONE fixed codeword c the number of matching chips is then Binomial(n, 1/2):
  ``P[matches >= k] = sum_{j >= k} C(n, j) / 2^n``.
- The detector may try several geometric candidates (flips, scales, rotations) or readings, and the
  decoder returns one of 2^80 messages (64 payload bits + their 16-bit CRC, checked afterwards):
  * CRC passes: the message is one of the 2^64 valid codewords, so by the union bound
    ``P[some candidate and valid codeword reach k matches] <= n_candidates * 2^64 * P[Bin(n, 1/2) >= k]``;
  * CRC fails ("marked with this key, payload unreadable", ``payload=None``; the decoder landed on a
    neighbouring sequence, which still agrees with most chips of the true codeword): the same bound
    with 2^80 sequences.
  "Detected" is the union of both kinds of event, so each bound is doubled: the reported ``fpr`` is
  ``2 * n_candidates * 2^(64 or 80) * P[Binomial(n, 1/2) >= k]`` and the two kinds together stay
  below the threshold.
- A synchronisation search that uses only a *separate* keyed pilot (disjoint carrier slots, independent
  key stream) does not add candidates: whatever shift it picks, the payload chips' scramble signs are
  still fair coins independent of that choice.

"detected" means this bound is below ``FPR_THRESHOLD`` = 1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from consent_and_watermark.ecc import MESSAGE_BITS, PAYLOAD_BITS

FPR_THRESHOLD = 1e-6


@dataclass
class Detection:
    """What a watermark detector found."""

    detected: bool  # FPR < 1e-6
    payload: int | None  # decoded 64-bit payload (None when its CRC fails: nothing decodable)
    bit_errors: int  # raw chip errors of the match (n_bits - matches)
    n_bits: int  # chips compared
    fpr: float  # P[match at least this good | unmarked content], union bound over all candidates
    details: dict = field(default_factory=dict)  # e.g. frames voted, shift/scale/flip found


def log_binomial_tail(n: int, k: int) -> float:
    """ln P[Binomial(n, 1/2) >= k], computed in log space (exact sum, no normal approximation)."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    j = np.arange(k, n)  # (n - k,)
    # ln C(n, j) for j = k..n from ln C(n, k) by the ratio C(n, j+1) / C(n, j) = (n - j) / (j + 1).
    first = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    log_terms = first + np.concatenate([[0.0], np.cumsum(np.log((n - j) / (j + 1.0)))]) + n * math.log(0.5)
    top = float(log_terms.max())
    return top + math.log(float(np.sum(np.exp(log_terms - top))))


def false_positive_rate(
    n_bits: int, matches: int, n_candidates: int = 1, codeword_bits: int = MESSAGE_BITS
) -> float:
    """Union bound: n_candidates * 2^codeword_bits * P[Binomial(n_bits, 1/2) >= matches], capped at 1."""
    log_fpr = math.log(n_candidates) + codeword_bits * math.log(2.0) + log_binomial_tail(n_bits, matches)
    return math.exp(min(log_fpr, 0.0))


def min_matches(n_bits: int, n_candidates: int = 1, codeword_bits: int = MESSAGE_BITS) -> int:
    """Smallest match count whose bound is below the threshold (n_bits + 1 when none is)."""
    lo, hi = n_bits // 2, n_bits + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if false_positive_rate(n_bits, mid, n_candidates, codeword_bits) < FPR_THRESHOLD:
            hi = mid
        else:
            lo = mid + 1
    return lo


def match_fpr(n_bits: int, matches: int, n_candidates: int, readable: bool) -> float:
    """The detector's bound: doubled (two outcome kinds), over 2^64 codewords if the CRC passed, else 2^80."""
    return false_positive_rate(n_bits, matches, 2 * n_candidates, PAYLOAD_BITS if readable else MESSAGE_BITS)

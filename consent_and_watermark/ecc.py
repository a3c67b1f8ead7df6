"""Keyed pseudo-random sequences and the error-correcting code that protects the 64-bit payload.

The watermark carries a 64-bit payload through a very noisy channel (JPEG, H.264, MP3 ... flip many of
the raw bits), so the payload is coded before it is spread over the carrier:

1. **Check bits**: a CRC-16 (CCITT polynomial 0x1021, initial value 0xFFFF) of the payload is appended:
   64 + 16 = 80 message bits. A decoding error on marked but damaged content (the decoder lands on a
   neighbouring codeword, which still agrees with most chips) is caught by the CRC, so the detector
   reports "marked, payload unreadable" instead of a wrong payload.
2. **Convolutional code** (rate 1/3, constraint length K = 7, generators 133/171/165 octal, the code
   LTE uses for its control channel): 80 message bits + 6 zero tail bits -> 86 x 3 = 258 code bits.
   Decoded with the soft-decision **Viterbi** algorithm (Viterbi 1967): the maximum-likelihood path
   through the 64-state trellis given real-valued channel observations. When that path fails its CRC,
   a caller may ask for the next best paths too (list Viterbi, Seshadri & Sundberg 1994) and keep the
   first whose CRC passes.
3. **Repetition + keyed interleaving**: the 258 code bits are repeated to fill the ``n`` carrier slots
   the medium offers (hundreds to thousands), and a keyed permutation scatters the copies so that a
   burst of damage (a cropped corner, a loud passage) hits many code bits a little, not a few a lot.
4. **Keyed scrambling**: every slot's chip is multiplied by a keyed pseudo-random sign. This is what
   makes the detector's false-positive bound honest: on content that was never marked with this key,
   the descrambled chip signs are independent fair coin flips whatever the content looks like (see
   ``detection.py``).

Every pseudo-random quantity comes from SHAKE-256 (FIPS 202) of the key and a purpose string, so the
sequences are the same on every machine and numpy version (numpy only promises stable *bit generators*,
not stable ``Generator`` methods).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

PAYLOAD_BITS = 64
CHECK_BITS = 16  # CRC-16/CCITT of the payload
MESSAGE_BITS = PAYLOAD_BITS + CHECK_BITS  # what the Viterbi decoder searches over: 2^80 sequences
CONSTRAINT_LENGTH = 7  # K: each output depends on the current bit and the 6 before it
GENERATORS = (0o133, 0o171, 0o165)  # rate 1/3, free distance 15
N_STATES = 1 << (CONSTRAINT_LENGTH - 1)  # 64 trellis states
CODE_BITS = (MESSAGE_BITS + CONSTRAINT_LENGTH - 1) * len(GENERATORS)  # 258


def keystream(key: bytes, purpose: str, n_bytes: int) -> np.ndarray:
    """(n_bytes,) uint8 pseudo-random bytes: SHAKE-256(domain || len(key) || key || purpose)."""
    h = hashlib.shake_256(b"deepfake-creation/watermark/v1\0" + len(key).to_bytes(2, "big") + key)
    h.update(purpose.encode())
    return np.frombuffer(h.digest(n_bytes), dtype=np.uint8)


def keyed_uniform(key: bytes, purpose: str, n: int) -> np.ndarray:
    """(n,) float64 uniform in [0, 1) with 32-bit resolution."""
    words = keystream(key, purpose, 4 * n).view(">u4").astype(np.float64)
    return words / 2.0**32


def keyed_signs(key: bytes, purpose: str, n: int) -> np.ndarray:
    """(n,) float32 of +-1, each an independent fair coin."""
    bits = np.unpackbits(keystream(key, purpose, (n + 7) // 8))[:n]
    return (2.0 * bits - 1.0).astype(np.float32)


def keyed_permutation(key: bytes, purpose: str, n: int) -> np.ndarray:
    """(n,) int64: a keyed permutation of range(n) (argsort of 64-bit keyed words)."""
    words = keystream(key, purpose, 8 * n).view(">u8")
    return np.argsort(words, kind="stable")


def payload_to_bits(payload: int) -> np.ndarray:
    """64-bit unsigned int -> (64,) uint8, most significant bit first."""
    if not 0 <= payload < 1 << PAYLOAD_BITS:
        raise ValueError(f"payload must fit in {PAYLOAD_BITS} unsigned bits, got {payload}")
    return np.array([(payload >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)], dtype=np.uint8)


def bits_to_payload(bits: np.ndarray) -> int:
    """(64,) 0/1 -> int (most significant bit first)."""
    value = 0
    for b in bits[:PAYLOAD_BITS]:
        value = (value << 1) | int(b)
    return value


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT (x^16 + x^12 + x^5 + 1, initial 0xFFFF) of a bit sequence -> (16,) uint8, MSB first."""
    reg = 0xFFFF
    for b in bits:
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= 0x1021
    return np.array([(reg >> (15 - i)) & 1 for i in range(16)], dtype=np.uint8)


def message_bits(payload: int) -> np.ndarray:
    """64-bit payload -> (80,) uint8: the payload bits followed by their CRC-16."""
    bits = payload_to_bits(payload)
    return np.concatenate([bits, crc16(bits)])


def check_message(bits: np.ndarray) -> int | None:
    """(80,) decoded message bits -> payload int, or None when the CRC does not match."""
    payload = bits[:PAYLOAD_BITS]
    return bits_to_payload(payload) if np.array_equal(crc16(payload), bits[PAYLOAD_BITS:]) else None


def _parity(x: np.ndarray) -> np.ndarray:
    """Parity of the set bits of small non-negative ints (vectorised)."""
    x = x.copy()
    p = np.zeros_like(x)
    while np.any(x):
        p ^= x & 1
        x >>= 1
    return p


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """Predecessors and branch outputs of the 64-state trellis.

    State = the last 6 input bits, newest in bit 0. Entering state ``ns`` means the new input bit is
    ``ns & 1``; the previous state was ``ns >> 1`` with its bit 5 either 0 or 1.
    Returns pred (64, 2) int and out (64, 2, 3) float of +-1 (the 3 code symbols of that branch).
    """
    ns = np.arange(N_STATES)
    pred = np.stack([ns >> 1, (ns >> 1) | (N_STATES >> 1)], axis=1)  # (64, 2)
    register = (pred << 1) | (ns[:, None] & 1)  # (64, 2): 7-bit shift register, newest bit 0
    out = np.stack([_parity(register & g) for g in GENERATORS], axis=-1)  # (64, 2, 3) in {0, 1}
    return pred, (2.0 * out - 1.0).astype(np.float64)


def conv_encode_bits(message: np.ndarray) -> np.ndarray:
    """(80,) message bits -> (258,) uint8 code bits (rate-1/3 convolutional code, zero-terminated)."""
    bits = np.concatenate([message, np.zeros(CONSTRAINT_LENGTH - 1, np.uint8)]).astype(np.int64)
    lag = np.arange(CONSTRAINT_LENGTH)[:, None]  # (K, 1)
    weights = (np.array(GENERATORS)[None, :] >> lag) & 1  # (K, 3): bit j of a generator taps bits[t - j]
    # Output t of generator g is the parity of sum_j weights[j, g] * bits[t - j] (a convolution mod 2).
    out = np.stack([np.convolve(bits, w)[: bits.size] for w in weights.T], axis=1)  # (86, 3)
    return (out & 1).astype(np.uint8).reshape(-1)


def conv_encode(payload: int) -> np.ndarray:
    """64-bit payload -> (258,) uint8 code bits of the payload and its CRC."""
    return conv_encode_bits(message_bits(payload))


def viterbi_decode(soft: np.ndarray) -> np.ndarray:
    """Soft-decision Viterbi decoding: (258,) real observations (> 0 means bit 1) -> (80,) message bits.

    The path metric is the correlation sum_t sum_k y_tk * s_tk between observations y and branch symbols
    s in {-1, +1}: for Gaussian noise, maximising it is maximum-likelihood decoding.
    """
    pred, out = _trellis()
    steps = soft.reshape(-1, len(GENERATORS)).astype(np.float64)  # (86, 3)
    metric = np.full(N_STATES, -np.inf)
    metric[0] = 0.0  # the encoder starts in the all-zero state
    choice = np.empty((steps.shape[0], N_STATES), np.uint8)
    rows = np.arange(N_STATES)
    for t, y in enumerate(steps):
        candidates = metric[pred] + out @ y  # (64, 2)
        choice[t] = np.argmax(candidates, axis=1)
        metric = candidates[rows, choice[t]]
    state = 0  # zero tail: the encoder ends in state 0
    bits = np.empty(steps.shape[0], np.uint8)
    for t in range(steps.shape[0] - 1, -1, -1):
        bits[t] = state & 1
        state = pred[state, choice[t, state]]
    return bits[:MESSAGE_BITS]


def list_viterbi_decode(soft: np.ndarray, list_size: int) -> np.ndarray:
    """Parallel list Viterbi: (258,) observations -> (L, 80) the ``list_size`` best messages, best first.

    Seshadri & Sundberg (1994): every state keeps its L best partial paths instead of one; at each step a
    state's 2 L candidates (two predecessors x L ranks) are sorted and the best L survive. Row 0 is the
    plain Viterbi path. With a CRC, a decoder can then take the best path whose check passes ("CRC-aided
    list decoding"), which recovers messages the single best path misses when the noise is strong.
    """
    pred, out = _trellis()
    steps = soft.reshape(-1, len(GENERATORS)).astype(np.float64)  # (86, 3)
    metric = np.full((N_STATES, list_size), -np.inf)
    metric[0, 0] = 0.0  # the encoder starts in the all-zero state
    back = np.empty((steps.shape[0], N_STATES, list_size), np.int64)  # index into (2 predecessors x L ranks)
    for t, y in enumerate(steps):
        candidates = (metric[pred] + (out @ y)[:, :, None]).reshape(N_STATES, 2 * list_size)  # (64, 2L)
        back[t] = np.argsort(-candidates, axis=1, kind="stable")[:, :list_size]
        metric = np.take_along_axis(candidates, back[t], axis=1)  # (64, L) best first
    messages = np.empty((list_size, steps.shape[0]), np.uint8)
    for rank in range(list_size):  # zero tail: every path ends in state 0
        state, r = 0, rank
        for t in range(steps.shape[0] - 1, -1, -1):
            messages[rank, t] = state & 1
            j, r = divmod(int(back[t, state, r]), list_size)
            state = pred[state, j]
    return messages[np.isfinite(metric[0]), :MESSAGE_BITS]


class SpreadCode:
    """Maps a payload onto ``n_slots`` keyed +-1 chips and back.

    slot i carries code bit ``owner[i]`` multiplied by the keyed sign ``scramble[i]``.
    """

    def __init__(self, key: bytes, n_slots: int, purpose: str):
        if n_slots < CODE_BITS:
            raise ValueError(f"need at least {CODE_BITS} slots for the code, got {n_slots}")
        self.n_slots = n_slots
        order = keyed_permutation(key, purpose + "/interleave", n_slots)
        self.owner = np.empty(n_slots, np.int64)
        self.owner[order] = np.arange(n_slots) % CODE_BITS  # (n,) code bit of each slot, copies scattered
        self.scramble = keyed_signs(key, purpose + "/scramble", n_slots)  # (n,) +-1

    def _spread(self, code: np.ndarray) -> np.ndarray:
        symbols = 2.0 * code.astype(np.float32) - 1.0  # (258,) +-1
        return symbols[self.owner] * self.scramble

    def chips(self, payload: int) -> np.ndarray:
        """payload -> (n_slots,) float32 of +-1."""
        return self._spread(conv_encode(payload))

    def decode(
        self, soft: np.ndarray, list_size: int = 1, list_gate: float = 0.0
    ) -> tuple[int | None, np.ndarray]:
        """(n_slots,) soft chips -> (payload or None if its CRC fails, (n_slots,) re-encoded chips).

        The re-encoded chips are those of the decoded 80-bit message, CRC valid or not: the detector
        counts agreement with them (a union bound over all 2^80 messages, see ``detection.py``). With
        ``list_size`` > 1, a best path whose CRC fails but whose chips agree in sign with at least
        ``list_gate`` of the soft chips is followed by the next best paths (list Viterbi), and the first
        with a valid CRC is taken. The bound already covers every valid codeword, whichever the decoder
        picks; the gate only saves the list search on content that is plainly unmarked.
        """
        descrambled = soft * self.scramble
        combined = np.bincount(self.owner, weights=descrambled, minlength=CODE_BITS)  # (258,) repetition sums
        message = viterbi_decode(combined)  # (80,)
        payload, expected = check_message(message), self._spread(conv_encode_bits(message))
        if payload is None and list_size > 1 and np.mean(soft * expected > 0) >= list_gate:
            for candidate in list_viterbi_decode(combined, list_size)[1:]:
                payload = check_message(candidate)
                if payload is not None:
                    return payload, self._spread(conv_encode_bits(candidate))
        return payload, expected

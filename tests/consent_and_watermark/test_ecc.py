"""The payload code: CRC, convolutional code + Viterbi, keyed spreading, and the binomial bound."""

from __future__ import annotations

import binascii

import numpy as np
from scipy.stats import binom

from consent_and_watermark import detection, ecc


def test_conv_code_shape_and_linearity():
    a, b = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    ca, cb = ecc.conv_encode(a), ecc.conv_encode(b)
    assert ca.shape == (3 * (64 + 16 + 6),) and set(np.unique(ca)) <= {0, 1}
    # CRC (initial value 0xFFFF) + convolutional code is affine over GF(2):
    # enc(a xor b) xor enc(0) = enc(a) xor enc(b).
    assert np.array_equal(ecc.conv_encode(a ^ b) ^ ecc.conv_encode(0), ca ^ cb)


def test_crc_matches_the_standard_library():
    """binascii.crc_hqx is CRC-16/CCITT; with initial value 0xFFFF it is CRC-16/CCITT-FALSE."""
    for payload in (0, 1, 0x0123456789ABCDEF, 2**64 - 1):
        expected = binascii.crc_hqx(payload.to_bytes(8, "big"), 0xFFFF)
        bits = ecc.message_bits(payload)[64:]
        assert int("".join(map(str, bits)), 2) == expected
        assert ecc.check_message(ecc.message_bits(payload)) == payload
    damaged = ecc.message_bits(12345)
    damaged[3] ^= 1
    assert ecc.check_message(damaged) is None


def test_viterbi_corrects_any_seven_errors():
    """Free distance 15 means maximum-likelihood decoding corrects every pattern of <= 7 bit errors."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        payload = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
        bits = ecc.conv_encode(payload).astype(np.float64)
        flips = rng.choice(bits.size, size=7, replace=False)
        bits[flips] = 1 - bits[flips]
        assert ecc.check_message(ecc.viterbi_decode(2 * bits - 1)) == payload


def test_spread_code_round_trip_with_noise_and_flips():
    rng = np.random.default_rng(1)
    code = ecc.SpreadCode(b"k" * 32, 5 * ecc.CODE_BITS, "test")
    for _ in range(10):
        payload = int(rng.integers(0, 2**63))
        chips = code.chips(payload)
        noisy = chips * np.where(rng.random(chips.size) < 0.15, -1, 1) + rng.normal(0, 0.5, chips.size)
        decoded, expected = code.decode(noisy)
        assert decoded == payload
        assert np.array_equal(expected, chips)


def test_keyed_sequences_are_deterministic_and_key_dependent():
    a = ecc.keyed_signs(b"key-a", "p", 4096)
    assert np.array_equal(a, ecc.keyed_signs(b"key-a", "p", 4096))
    b = ecc.keyed_signs(b"key-b", "p", 4096)
    assert abs(float(np.mean(a * b))) < 0.08  # independent sequences: correlation ~ N(0, 1/64^2)
    assert abs(float(np.mean(a))) < 0.08
    perm = ecc.keyed_permutation(b"key-a", "p", 1000)
    assert np.array_equal(np.sort(perm), np.arange(1000))


def test_binomial_tail_matches_scipy():
    for n, k in [(64, 51), (64, 40), (2124, 1300), (500, 500)]:
        assert np.isclose(detection.log_binomial_tail(n, k), np.log(binom.sf(k - 1, n, 0.5)), rtol=1e-9)


def test_threshold_for_a_plain_64_bit_match_is_51():
    """Without search or decoding (one candidate, a known payload), 51 of 64 bits give FPR < 1e-6."""
    assert detection.min_matches(64, n_candidates=1, codeword_bits=0) == 51
    # The union bound over 2^80 messages and 18 candidates needs far more agreement.
    k = detection.min_matches(2000, n_candidates=18)
    assert detection.false_positive_rate(2000, k, 18) < 1e-6 <= detection.false_positive_rate(2000, k - 1, 18)
    assert k > 1000


def test_conv_code_impulse_response_is_the_generators():
    """A single 1 followed by zeros: output j of generator g is bit j of g (the code's taps, LSB first)."""
    message = np.zeros(ecc.MESSAGE_BITS, np.uint8)
    message[0] = 1
    code = ecc.conv_encode_bits(message).reshape(-1, 3)  # (86, 3)
    for g, generator in enumerate(ecc.GENERATORS):
        taps = [(generator >> j) & 1 for j in range(ecc.CONSTRAINT_LENGTH)]
        assert code[: ecc.CONSTRAINT_LENGTH, g].tolist() == taps
    assert not code[ecc.CONSTRAINT_LENGTH :].any()


def _path_metric(soft: np.ndarray, message: np.ndarray) -> float:
    """Correlation of (258,) observations with the +-1 code symbols of an (80,) message."""
    return float(soft @ (2.0 * ecc.conv_encode_bits(message) - 1.0))


def test_list_viterbi_returns_the_best_paths_in_order():
    """Row 0 is the Viterbi path; the rows are distinct, in falling metric, and beat its 1-bit neighbours.

    Rows 0..k are the k + 1 best codewords overall, so row k's metric is at least the k-th best metric
    among the codewords whose message differs from row 0's in one bit (an independent check).
    """
    rng = np.random.default_rng(3)
    soft = 2.0 * ecc.conv_encode(0x0123456789ABCDEF) - 1.0 + rng.normal(0, 1.2, ecc.CODE_BITS)
    paths = ecc.list_viterbi_decode(soft, 8)  # (8, 80)
    assert paths.shape == (8, ecc.MESSAGE_BITS)
    assert np.array_equal(paths[0], ecc.viterbi_decode(soft))
    assert len({p.tobytes() for p in paths}) == 8
    metrics = [_path_metric(soft, p) for p in paths]
    assert all(np.diff(metrics) <= 1e-9)
    neighbours = []
    for i in range(ecc.MESSAGE_BITS):
        flipped = paths[0].copy()
        flipped[i] ^= 1
        neighbours.append(_path_metric(soft, flipped))
    neighbours.sort(reverse=True)
    assert all(metrics[k] >= neighbours[k - 1] - 1e-9 for k in range(1, 8))


def test_crc_aided_list_decoding_recovers_more_payloads():
    """At a noise level where the best path often fails its CRC, the 16 best paths rescue many payloads."""
    rng = np.random.default_rng(4)
    code = ecc.SpreadCode(b"k" * 32, 2 * ecc.CODE_BITS, "test")
    plain = listed = 0
    for _ in range(30):
        payload = int(rng.integers(0, 2**63))
        noisy = code.chips(payload) + rng.normal(0, 1.8, code.n_slots)
        plain += code.decode(noisy)[0] == payload
        decoded, expected = code.decode(noisy, list_size=16)
        listed += decoded == payload
        assert decoded in (None, payload)  # a wrong payload with a valid CRC would need 16 / 65536 luck
        if decoded == payload:
            assert np.array_equal(expected, code.chips(payload))
    assert listed >= plain + 5


def test_the_match_bound_counts_both_outcomes_and_the_codewords_the_crc_admits():
    n, k = 2000, 1300
    assert detection.match_fpr(n, k, 3, readable=True) == detection.false_positive_rate(n, k, 6, 64)
    assert detection.match_fpr(n, k, 3, readable=False) == detection.false_positive_rate(n, k, 6, 80)

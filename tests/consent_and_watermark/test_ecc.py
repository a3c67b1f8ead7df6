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


def _path_metric(soft: np.ndarray, message: np.ndarray) -> float:
    return float(soft @ (2.0 * ecc.conv_encode_bits(message) - 1.0))


def test_viterbi_finds_the_best_zero_started_zero_terminated_codeword():
    """Maximum likelihood over the codewords the encoder can emit (start and end in state 0): the decoded
    message beats every message one bit away from it, on pure noise too, where a decoder that lets the
    path start or end anywhere picks a sequence that no zero-started encoder produces."""
    rng = np.random.default_rng(7)
    for _ in range(10):
        soft = rng.normal(0, 1, ecc.CODE_BITS)
        best = ecc.viterbi_decode(soft)
        metric = _path_metric(soft, best)
        for i in range(ecc.MESSAGE_BITS):
            flipped = best.copy()
            flipped[i] ^= 1
            assert metric >= _path_metric(soft, flipped) - 1e-9, i


def test_list_viterbi_row_0_is_the_viterbi_path_even_when_paths_tie():
    """Hard (+-1) observations make many paths tie; the list decoder breaks ties as ``viterbi_decode``
    does (the first predecessor), so its row 0 is still the plain Viterbi path."""
    rng = np.random.default_rng(1)
    for _ in range(10):
        code = 2.0 * ecc.conv_encode(int(rng.integers(0, 2**63))) - 1.0
        flips = rng.choice(ecc.CODE_BITS, 40, replace=False)
        hard = code.copy()
        hard[flips] *= -1
        hard[rng.choice(ecc.CODE_BITS, 30, replace=False)] = 0.0  # erasures: more ties
        assert np.array_equal(ecc.list_viterbi_decode(hard, 4)[0], ecc.viterbi_decode(hard))


def _noisy_cases():
    rng = np.random.default_rng(4)
    code = ecc.SpreadCode(b"k" * 32, 2 * ecc.CODE_BITS, "test")
    for _ in range(30):
        payload = int(rng.integers(0, 2**63))
        yield code, code.chips(payload) + rng.normal(0, 1.8, code.n_slots)


def test_list_decoding_takes_the_first_path_in_the_list_whose_crc_passes():
    """The best path that passes its CRC, the second best included (not a later one)."""
    second = 0
    for code, noisy in _noisy_cases():
        combined = np.bincount(code.owner, weights=noisy * code.scramble, minlength=ecc.CODE_BITS)
        rows = ecc.list_viterbi_decode(combined, 16)
        valid = [ecc.check_message(r) for r in rows if ecc.check_message(r) is not None]
        second += ecc.check_message(rows[0]) is None and ecc.check_message(rows[1]) is not None
        assert code.decode(noisy, list_size=16)[0] == (valid[0] if valid else None)
    assert second >= 1  # the case that tells "[1:]" from "[2:]" did occur


def test_the_list_gate_is_inclusive():
    """A best path that agrees with exactly ``list_gate`` of the chips gets the list search."""
    searched = 0
    for code, noisy in _noisy_cases():
        payload, expected = code.decode(noisy)
        if payload is not None:
            continue
        share = float(np.mean(noisy * expected > 0))
        listed = code.decode(noisy, list_size=16)[0]
        assert code.decode(noisy, list_size=16, list_gate=share)[0] == listed
        searched += listed is not None
    assert searched >= 1


def test_keyed_sequences_are_pinned():
    """Marks written earlier must stay readable: the keyed sequences are a file format, fixed here by value
    (SHAKE-256 bytes, their bits MSB first, the argsort of big-endian 64-bit words)."""
    key = b"pinned-key"
    assert ecc.keystream(key, "p", 4).tobytes().hex() == "cc9fb263"
    assert ecc.keyed_signs(key, "p", 10).tolist() == [1, 1, -1, -1, 1, 1, -1, -1, 1, -1]
    assert ecc.keyed_permutation(key, "q", 5).tolist() == [1, 4, 2, 0, 3]
    np.testing.assert_allclose(ecc.keyed_uniform(key, "u", 2), [0.5355640824418515, 0.6492265786509961])


def test_the_bound_is_a_probability_and_a_hopeless_match_count_says_so():
    """The union bound is capped at 1; when not even every chip matching beats the threshold (10 chips
    against 2^80 codewords), the smallest match count that would is n_bits + 1."""
    assert detection.false_positive_rate(100, 50, n_candidates=10) == 1.0
    assert detection.false_positive_rate(2000, 0, n_candidates=40) == 1.0
    assert detection.min_matches(10, n_candidates=1, codeword_bits=80) == 11
    assert detection.min_matches(10, n_candidates=1, codeword_bits=0) == 11  # 2^-10 ~ 1e-3 > 1e-6

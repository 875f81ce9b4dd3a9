"""What the default run does after counting, each fast path against its plain reference:
complexity measures from packed keys, Clopper-Pearson per distinct count, the CSV writer."""
import numpy as np
import pandas as pd
import pytest

from volume import results
from volume.complexity import complexity_table, key_sensitivity, lz76_words, lz_complexity
from volume.estimators.monte_carlo import clopper_pearson_log, log_frequencies
from volume.functions import unpack_bits


def random_keys(n: int, rows: int = 300) -> np.ndarray:
    rng = np.random.default_rng(n)
    n_inputs = 2**n
    bits = rng.random((rows, n_inputs)) < rng.random((rows, 1))  # from near-constant to balanced
    packed = np.packbits(bits, axis=1, bitorder="little")
    width = -(-n_inputs // 64) * 8
    return np.pad(packed, ((0, 0), (0, width - packed.shape[1]))).view("<u8"), bits


@pytest.mark.parametrize("n", range(1, 10))
def test_sensitivity_and_ones_from_keys_match_the_truth_table(n):
    keys, bits = random_keys(n)
    index = np.arange(2**n)
    flips = sum((bits != bits[:, index ^ (1 << j)]).sum(1) for j in range(n))
    np.testing.assert_array_equal(key_sensitivity(keys, 2**n), flips / 2**n)
    table = complexity_table(keys, 2**n, boolean_cube=True, chunk=128)
    np.testing.assert_array_equal(table["ones"], bits.sum(1))
    np.testing.assert_array_equal(table["lz"], lz_complexity(bits))
    assert np.isnan(complexity_table(keys, 2**n, boolean_cube=False)["sensitivity"]).all()


def test_lz_of_the_reversed_string_is_read_through_a_view():
    _, bits = random_keys(7)
    reference = [np.log2(128) * 0.5 * (lz76_words(r.astype(np.uint8)) + lz76_words(r[::-1].astype(np.uint8)))
                 if r.min() != r.max() else np.log2(128) for r in bits]
    np.testing.assert_array_equal(lz_complexity(bits), reference)


def test_log_frequencies_equal_the_interval_of_each_count():
    counts = np.array([1, 5, 1, 1000, 5, 999_999, 1_000_000, 1])
    log_p, low, high = log_frequencies(counts, 1_000_000)
    want_low, want_high = clopper_pearson_log(counts, 1_000_000)
    np.testing.assert_array_equal(low, want_low)
    np.testing.assert_array_equal(high, want_high)
    np.testing.assert_array_equal(log_p, np.log(counts) - np.log(1_000_000))


FRAMES = {
    "numbers and hex keys": pd.DataFrame({"function": ["ff", "0a", "aa"], "count": [3, 2, 1],
                                          "log_p": [np.log(0.5), -0.0, 0.0], "lz": [7.0, 1 / 3, np.nan],
                                          "ones": np.array([1, 2, 3], np.uint16), "ok": [True, False, True]}),
    "text needing quotes": pd.DataFrame({"method": ["rare_event(a, b)", 'say "x"', "two\nlines", None],
                                         "h": ["01", "", np.nan, "z"], "p": np.array([0.1, np.inf, -np.inf, 2.5],
                                                                                       np.float32)}),
    "one column with an empty field": pd.DataFrame({"only": ["", "a"]}),
    "mixed object column (left to pandas)": pd.DataFrame({"mixed": [1.5, None, "s"], "n": [1, 2, 3]}),
    "no rows": pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)}),
}


@pytest.mark.parametrize("name", FRAMES)
def test_write_csv_is_byte_identical_to_pandas(tmp_path, name):
    frame = FRAMES[name]
    results.write_csv(tmp_path / "fast.csv", frame)
    frame.to_csv(tmp_path / "pandas.csv", index=False, float_format=results.FLOAT_FORMAT)
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()

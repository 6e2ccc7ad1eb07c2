import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from snip_tf.data import reber


def test_generated_strings_are_accepted_and_seeded():
    strings = reber.generate(500, seed=3)
    assert all(reber.is_valid(s) for s in strings)
    assert strings == reber.generate(500, seed=3) and strings != reber.generate(500, seed=4)
    embedded = reber.generate(300, seed=3, embedded=True)
    assert all(reber.is_valid(s, embedded=True) for s in embedded)
    assert not any(reber.is_valid(s) for s in embedded)
    lengths = [len(s) for s in reber.generate(200, seed=0, min_len=11, max_len=20)]
    assert min(lengths) >= 11 and max(lengths) <= 20


@pytest.mark.parametrize("string,valid", [
    ("BTXSE", True), ("BPVVE", True), ("BTSSXXTVVE", True), ("BPTVPXTTVVE", True),
    ("BTXXE", False), ("TXSE", False), ("BTXS", False), ("BE", False), ("BTXSEE", False),
    ("BPVPSE", True), ("BPVPXVVE", True), ("BPVPXVV", False), ("", False)])
def test_membership(string, valid):
    assert reber.is_valid(string) is valid


def test_embedded_symbols_must_match():
    inner = "BTXSE"
    assert reber.is_valid("BT" + inner + "TE", embedded=True)
    assert reber.is_valid("BP" + inner + "PE", embedded=True)
    assert not reber.is_valid("BT" + inner + "PE", embedded=True)
    assert not reber.is_valid("BT" + "BTXXE" + "TE", embedded=True)


# The same grammar written independently as a regular expression (state 4 loops through 3 and 5).
REBER_RE = re.compile(r"^B((TS*X|PT*VP)(XT*VP)*(S|XT*VV)|PT*VV)E$")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.data())
def test_mutated_strings_agree_with_an_independent_regex(seed, data):
    s = reber.generate(1, seed=seed)[0]
    assert REBER_RE.match(s)
    i = data.draw(st.integers(1, len(s) - 2))
    mutated = s[:i] + data.draw(st.sampled_from("TSXPV")) + s[i + 1:]
    deleted = s[:i] + s[i + 1:]
    inserted = s[:i] + data.draw(st.sampled_from("TSXPV")) + s[i:]
    for candidate in (mutated, deleted, inserted):
        assert reber.is_valid(candidate) == bool(REBER_RE.match(candidate)), candidate
    assert not reber.is_valid(s[:-1]) and not reber.is_valid(s[:i] + "A" + s[i + 1:])


def test_dataset_is_balanced_deterministic_and_correctly_labelled():
    strings, labels = reber.make_dataset(1001, seed=5)
    assert len(strings) == 1001 and labels.sum() == 500
    assert all(reber.is_valid(s) == bool(l) for s, l in zip(strings, labels))
    invalid = [s for s, l in zip(strings, labels) if not l]
    near = [s for s in invalid if set(s) <= set(reber.ALPHABET)]
    assert 0.35 < len(near) / len(invalid) < 0.55          # both kinds of invalid strings
    again = reber.make_dataset(1001, seed=5)
    assert again[0] == strings and (again[1] == labels).all()
    e_strings, e_labels = reber.make_dataset(200, seed=1, embedded=True)
    assert all(reber.is_valid(s, True) == bool(l) for s, l in zip(e_strings, e_labels))


def test_next_symbol_targets():
    x, y = reber.next_symbol_targets(["BTXSE"])
    legal = [set(np.array(list(reber.ALPHABET))[row > 0]) for row in y[0]]
    assert legal == [{"T", "P"}, {"S", "X"}, {"S", "X"}, {"E"}, set()]
    assert x.shape == (1, 5) and x[0].tolist() == [1, 2, 4, 3, 7]


def test_encode_pads_and_rejects_unknown_symbols():
    vocab = reber.vocabulary(["BTXSE", "BQE"])
    encoded = reber.encode(["BTXSE", "BQE"], vocab)
    assert encoded.shape == (2, 5) and encoded[1, 3:].tolist() == [0, 0]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        reber.encode(["BZE"], vocab)


def test_thesis_data(shared_data):
    (train, y_train), (test, y_test) = reber.load_thesis(shared_data)
    assert len(train) == 18750 and len(test) == 6250
    assert int(y_train.sum()) == 9339 and int(y_test.sum()) == 3161
    assert all(reber.is_valid(s) == bool(v) for s, v in zip(train + test,
                                                             list(y_train) + list(y_test)))


def test_tfds_builder_generates_offline(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import snip_tf.data.reber_tfds  # noqa: F401  (registers the builder)

    ds = tfds.load("reber_grammar/embedded", split="test", data_dir=str(tmp_path),
                   download=True, as_supervised=True)
    examples = [(s.decode(), int(l)) for s, l in tfds.as_numpy(ds)]
    assert len(examples) == 6250 and sum(l for _, l in examples) == 3125
    assert all(reber.is_valid(s, embedded=True) == bool(l) for s, l in examples)

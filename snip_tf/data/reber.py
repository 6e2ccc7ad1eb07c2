"""The Reber grammar: a seeded generator, a membership test, the thesis's classification data set
and the classic next-symbol prediction task.

The standard grammar over B T S X P V E: B, then a path through states 1-5
(1 -T-> 2, 1 -P-> 3, 2 -S-> 2, 2 -X-> 4, 3 -T-> 3, 3 -V-> 5, 4 -X-> 3, 4 -S-> end, 5 -P-> 4,
5 -V-> end), then E. The embedded grammar wraps a Reber string: B, T or P, the Reber string, the same
T or P, E.

>>> generate(2, seed=0)
['BPVVE', 'BTSSSSSXSE']
>>> is_valid("BTXSE"), is_valid("BTXXE")
(True, False)
"""

from __future__ import annotations

import csv
import os
from typing import Optional

import numpy as np

ALPHABET = "BTSXPVE"
_END = 0
TRANSITIONS = {
    1: {"T": 2, "P": 3},
    2: {"S": 2, "X": 4},
    3: {"T": 3, "V": 5},
    4: {"X": 3, "S": _END},
    5: {"P": 4, "V": _END},
}
# Letters the thesis's invalid strings use besides the grammar's alphabet.
_OTHER_LETTERS = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in ALPHABET)


def _walk(rng: np.random.Generator, max_steps: int) -> Optional[str]:
    state, out = 1, []
    while state != _END:
        if len(out) >= max_steps:
            return None
        choices = list(TRANSITIONS[state].items())
        symbol, state = choices[rng.integers(len(choices))]
        out.append(symbol)
    return "".join(out)


def _reber(rng, min_len: int, max_len: int) -> str:
    while True:
        body = _walk(rng, max_len - 2)
        if body is not None and min_len <= len(body) + 2 <= max_len:
            return "B" + body + "E"


def generate(n: int, seed: int = 0, embedded: bool = False, min_len: int = 0,
             max_len: int = 60) -> list:
    """``n`` valid strings (uniform random choices at every state), lengths in [min_len, max_len]."""
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}.")
    if max_len < (9 if embedded else 5):
        raise ValueError(f"max_len={max_len} is shorter than the shortest valid string.")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if embedded:
            inner = _reber(rng, max(min_len - 4, 0), max_len - 4)
            wrap = "TP"[rng.integers(2)]
            out.append("B" + wrap + inner + wrap + "E")
        else:
            out.append(_reber(rng, min_len, max_len))
    return out


def _reber_state_after(body: str) -> Optional[int]:
    """State after reading ``body`` (no B/E) from state 1, or None on an illegal transition."""
    state = 1
    for symbol in body:
        if state == _END or symbol not in TRANSITIONS[state]:
            return None
        state = TRANSITIONS[state][symbol]
    return state


def is_valid(string: str, embedded: bool = False) -> bool:
    """Whether ``string`` is in the (embedded) Reber grammar."""
    if not isinstance(string, str) or len(string) < 2 or string[0] != "B" or string[-1] != "E":
        return False
    body = string[1:-1]
    if embedded:
        if len(body) < 2 or body[0] not in "TP" or body[-1] != body[0]:
            return False
        return is_valid(body[1:-1], embedded=False)
    return _reber_state_after(body) == _END


def next_symbols(prefix: str, embedded: bool = False) -> set:
    """The symbols that may legally follow ``prefix`` (a prefix of a valid string)."""
    if prefix == "":
        return {"B"}
    if prefix[0] != "B":
        return set()
    if embedded:
        rest = prefix[1:]
        if rest == "":
            return {"T", "P"}
        wrap, inner = rest[0], rest[1:]
        if wrap not in "TP":
            return set()
        if inner.endswith("E") and len(inner) >= 2 and is_valid(inner):
            return {wrap}
        if len(inner) > 2 and inner[-1] == wrap and is_valid(inner[:-1]):
            return {"E"}
        return next_symbols(inner)
    body = prefix[1:]
    if body.endswith("E"):
        return set()
    state = _reber_state_after(body)
    if state is None:
        return set()
    return {"E"} if state == _END else set(TRANSITIONS[state])


def _near_miss(rng, valid: str, embedded: bool) -> str:
    """A string over the grammar's alphabet that is not in the grammar: a wrong symbol, a
    truncated path, or (embedded) mismatched wrappers."""
    for _ in range(100):
        kind = rng.integers(3 if embedded else 2)
        chars = list(valid)
        if kind == 0:   # one symbol replaced
            i = int(rng.integers(1, len(chars) - 1))
            chars[i] = "TSXPV"[rng.integers(5)]
            candidate = "".join(chars)
        elif kind == 1:  # path cut short
            cut = int(rng.integers(2, len(chars) - 1))
            candidate = "".join(chars[:cut]) + "E"
        else:           # embedded: the two wrapper symbols differ
            chars[1] = "T" if chars[1] == "P" else "P"
            candidate = "".join(chars)
        if not is_valid(candidate, embedded):
            return candidate
    raise RuntimeError("could not make a near miss")  # pragma: no cover - practically unreachable


def _other_letters(rng, length: int) -> str:
    body = "".join(_OTHER_LETTERS[i] for i in rng.integers(len(_OTHER_LETTERS), size=length - 2))
    return "B" + body + "E"


def make_dataset(n: int, seed: int = 0, embedded: bool = False, min_len: int = 0,
                 max_len: int = 60, near_miss_fraction: float = 0.44) -> tuple:
    """``(strings, labels)``: ``n`` strings, half valid (label 1) and half invalid (label 0),
    shuffled. Of the invalid ones, ``near_miss_fraction`` are near misses over the grammar's
    alphabet (the thesis's data: 5,500 of 12,500) and the rest use other letters."""
    if n < 2:
        raise ValueError(f"n must be at least 2; got {n}.")
    rng = np.random.default_rng(seed)
    n_valid = n // 2
    n_invalid = n - n_valid
    valid = generate(n_valid, seed=seed, embedded=embedded, min_len=min_len, max_len=max_len)
    pool = generate(n_invalid, seed=seed + 1, embedded=embedded, min_len=max(min_len, 5),
                    max_len=max_len)
    n_near = int(round(near_miss_fraction * n_invalid))
    invalid = [_near_miss(rng, s, embedded) for s in pool[:n_near]]
    invalid += [_other_letters(rng, len(s)) for s in pool[n_near:]]
    strings = valid + invalid
    labels = np.array([1] * n_valid + [0] * n_invalid, dtype=np.int64)
    order = rng.permutation(n)
    return [strings[i] for i in order], labels[order]


def load_thesis(data_dir: Optional[str] = None) -> tuple:
    """The thesis's exact split: ``((train_strings, train_labels), (test_strings, test_labels))``
    from ``<data_dir>/reber_thesis/{train,test}_data.csv``."""
    from snip_tf.data.loaders import DataError, data_dir as resolve

    folder = resolve(data_dir)
    if folder is None:
        raise DataError("The thesis's Reber data is only available locally: set --data_dir or "
                        "$SNIP_TF_DATA_DIR to a folder with reber_thesis/{train,test}_data.csv.")
    out = []
    for split in ("train", "test"):
        path = os.path.join(folder, "reber_thesis", f"{split}_data.csv")
        if not os.path.isfile(path):
            raise DataError(f"Missing data file {path!r} (expected columns ',string,valid').")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "string" not in rows[0] or "valid" not in rows[0]:
            raise DataError(f"{path!r} lacks the columns 'string' and 'valid'.")
        out.append(([r["string"] for r in rows], np.array([int(r["valid"]) for r in rows])))
    return tuple(out)


def vocabulary(strings) -> dict:
    """Symbol -> index (1-based; 0 is padding), the grammar's alphabet first."""
    symbols = list(ALPHABET) + sorted({c for s in strings for c in s} - set(ALPHABET))
    return {c: i + 1 for i, c in enumerate(symbols)}


def encode(strings, vocab: dict, max_len: Optional[int] = None) -> np.ndarray:
    """Integer matrix (N, max_len), right-padded with 0; unknown symbols are an error."""
    max_len = max_len or max(len(s) for s in strings)
    out = np.zeros((len(strings), max_len), dtype=np.int32)
    for i, s in enumerate(strings):
        if len(s) > max_len:
            raise ValueError(f"string {i} has length {len(s)} > max_len={max_len}.")
        try:
            out[i, :len(s)] = [vocab[c] for c in s]
        except KeyError as error:
            raise ValueError(f"string {i} has a symbol outside the vocabulary: {error}.") from None
    return out


def next_symbol_targets(strings, embedded: bool = False, max_len: Optional[int] = None):
    """Inputs and multi-hot targets of the next-symbol task: for each position t of a valid string,
    the legal symbols after ``string[:t+1]`` (over ALPHABET). Returns ``(x, y)`` with x encoded
    by :func:`vocabulary` of the alphabet, y of shape (N, max_len, 7)."""
    vocab = {c: i + 1 for i, c in enumerate(ALPHABET)}
    max_len = max_len or max(len(s) for s in strings)
    x = encode(strings, vocab, max_len)
    y = np.zeros((len(strings), max_len, len(ALPHABET)), dtype=np.float32)
    for i, s in enumerate(strings):
        for t in range(len(s)):
            for symbol in next_symbols(s[:t + 1], embedded):
                y[i, t, ALPHABET.index(symbol)] = 1.0
    return x, y

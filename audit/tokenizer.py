"""jieba's tokenizer with its dictionary held in 8 MB instead of 63 MB.

The detector tokenises with jieba's general dictionary: half a million words and word
prefixes, which jieba keeps as a Python dict of strings (63 MB resident in every worker
process).  The tokenizer only ever asks that dict two things: is this fragment a word or
a word's prefix, and what is its frequency.  ``HashedFrequencies`` answers both from two
sorted arrays, each key's 64-bit hash and its frequency, and ``LeanTokenizer`` is jieba's
own ``Tokenizer`` built on it, so it cuts exactly as jieba does (its one override,
``get_DAG``, is jieba's with half the lookups).

The hash is Python's 64-bit SipHash of the key's UTF-8 bytes, random per process, so the
arrays are built from jieba's dictionary file in each process (about a second, as long as
jieba's own cache load) rather than cached on disk.  Two distinct keys share a hash with
probability about n²/2⁶⁵ (10⁻⁸ for n = 5·10⁵); a fragment that is no key matches one with
probability n/2⁶⁴ per lookup.  ``tests/test_tokenizer.py`` compares every key's frequency
and the cuts of real sentences with jieba's own.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable

import jieba
import numpy as np

_PREFIX_ONLY = -1  # marks a prefix occurrence while building; a prefix that is no word is 0
_BUCKET_SHIFT = 48  # a signed 64-bit hash >> 48 lies in [-2**15, 2**15)
_BUCKET_OFFSET = 2**15


def _key_hash(key: str) -> int:
    # Of the UTF-8 bytes, not of the str: CPython hashes a string's internal buffer, so
    # 'BP' (1 byte per character) and '偂' (U+5042, 2 bytes) hash alike; UTF-8 does not.
    return hash(key.encode("utf-8", "surrogatepass"))


class HashedFrequencies:
    """The mapping jieba calls ``FREQ`` (word or prefix → frequency, 0 for a prefix that is
    not itself a word), read-only except for words added after loading."""

    def __init__(self, hashes: np.ndarray, freqs: np.ndarray):
        hashes = hashes.astype(np.int64)
        # array('q') rather than numpy: bisect on it compares plain ints, 5x faster.
        self._hashes = array("q", hashes.tobytes())
        self._freqs = array("q", freqs.astype(np.int64).tobytes())
        # Where each value of a hash's top 16 bits starts, so that a lookup bisects the
        # handful of keys in its bucket, not all of them: jieba looks up every fragment.
        buckets = (hashes >> _BUCKET_SHIFT) + _BUCKET_OFFSET
        starts = np.searchsorted(buckets, np.arange(2 * _BUCKET_OFFSET + 1))
        self._starts = array("q", starts.astype(np.int64).tobytes())
        self._added: dict[str, int] = {}

    def _index(self, key: str) -> int:
        h = _key_hash(key)
        b = (h >> _BUCKET_SHIFT) + _BUCKET_OFFSET
        hi = self._starts[b + 1]
        i = bisect_left(self._hashes, h, self._starts[b], hi)
        return i if i < hi and self._hashes[i] == h else -1

    def get(self, key: str, default: int | None = None) -> int | None:
        if key in self._added:
            return self._added[key]
        i = self._index(key)
        return self._freqs[i] if i >= 0 else default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self._added or self._index(key) >= 0)

    def __getitem__(self, key: str) -> int:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: int) -> None:
        self._added[key] = value


def load_frequencies(lines: Iterable[bytes]) -> tuple[HashedFrequencies, int]:
    """``jieba.Tokenizer.gen_pfdict`` over a dictionary file's lines, into hashed arrays:
    the last line of a word sets its frequency, a prefix that is no word gets 0, and the
    total sums every line."""
    hashes, freqs = array("q"), array("q")
    total = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip().decode("utf-8")
        try:
            word, freq_text = line.split(" ")[:2]
            freq = int(freq_text)
        except ValueError:
            raise ValueError(f"invalid dictionary entry at line {lineno}: {line}") from None
        total += freq
        hashes.append(_key_hash(word))
        freqs.append(freq)
        for end in range(1, len(word)):
            hashes.append(_key_hash(word[:end]))
            freqs.append(_PREFIX_ONLY)
    h = np.frombuffer(hashes, dtype=np.int64)
    f = np.frombuffer(freqs, dtype=np.int64)
    is_word = f != _PREFIX_ONLY
    # Reversed, so np.unique's first occurrence of a word is its last line in the file.
    word_hashes, last = np.unique(h[is_word][::-1], return_index=True)
    word_freqs = f[is_word][::-1][last]
    keys = np.unique(h)
    key_freqs = np.zeros(len(keys), dtype=np.int64)
    key_freqs[np.searchsorted(keys, word_hashes)] = word_freqs
    return HashedFrequencies(keys, key_freqs), total


class LeanTokenizer(jieba.Tokenizer):
    """``jieba.Tokenizer`` over its default dictionary, with ``FREQ`` as
    ``HashedFrequencies``.  Everything else, the cutting above all, is jieba's."""

    def initialize(self, dictionary: str | None = None) -> None:
        if dictionary is not None:
            raise ValueError("LeanTokenizer reads jieba's default dictionary only")
        with self.lock:
            if self.initialized:
                return
            with self.get_dict_file() as lines:
                self.FREQ, self.total = load_frequencies(lines)
            self.initialized = True

    def get_DAG(self, sentence: str) -> dict[int, list[int]]:
        """jieba's own, with one lookup per fragment where it makes two (``in``, then
        ``[]``): each lookup here hashes and bisects rather than probing a dict."""
        self.check_initialized()
        dag: dict[int, list[int]] = {}
        n = len(sentence)
        freq_of = self.FREQ.get
        for k in range(n):
            ends: list[int] = []
            i = k
            while i < n:
                freq = freq_of(sentence[k : i + 1])
                if freq is None:
                    break
                if freq:
                    ends.append(i)
                i += 1
            dag[k] = ends or [k]
        return dag

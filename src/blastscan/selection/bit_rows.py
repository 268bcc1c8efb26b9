"""Boolean rows packed 8 per byte: k-th set bit and prefix counts in O(samples / 8)."""

from __future__ import annotations

import numpy as np

# _SELECT[b, r]: position (0 = most significant, np.packbits order) of the (r+1)-th set bit of b
_SELECT = np.zeros((256, 8), dtype=np.int64)
for _b in range(256):
    _pos = np.flatnonzero(np.unpackbits(np.array([_b], dtype=np.uint8)))
    _SELECT[_b, : len(_pos)] = _pos
_LEADING = np.array([0x00, 0x80, 0xC0, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE], dtype=np.uint8)
_BYTE_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)
# set bits per byte: numpy >= 2.0 has it built in, a table lookup does it on 1.26
_popcount = getattr(np, "bitwise_count", lambda a: _BYTE_POPCOUNT[a])


class _BitRows:
    """Boolean rows packed 8 per byte with cumulative per-byte counts.

    Order statistics of a cell (its median sample) and counts over a prefix of a sorted order
    are then a search over n/8 bytes instead of a cumulative sum over n samples.
    """

    def __init__(self, mask: np.ndarray) -> None:
        self.width = mask.shape[1]
        self.packed = np.packbits(mask, axis=1)
        self.byte_count = _popcount(self.packed)
        self.cum = np.cumsum(self.byte_count, axis=1, dtype=np.int32)
        self.rows = np.arange(mask.shape[0])

    def count_prefix(self, length: np.ndarray) -> np.ndarray:
        """Set bits among the first `length` columns of each row."""
        length = np.clip(length, 0, self.width)
        full, rest = length // 8, length % 8
        before = np.where(full > 0, self.cum[self.rows, np.maximum(full - 1, 0)], 0)
        last = np.minimum(full, self.packed.shape[1] - 1)
        partial = _popcount(self.packed[self.rows, last] & _LEADING[rest])
        return before + np.where(rest > 0, partial, 0)

    def kth(self, k: np.ndarray) -> np.ndarray:
        """Column of the k-th set bit (k >= 1) of each row; garbage (but in range) if k is 0."""
        byte = np.argmax(self.cum >= k[:, None], axis=1)
        before = self.cum[self.rows, byte] - self.byte_count[self.rows, byte]
        rank = np.clip(k - before - 1, 0, 7)
        col = byte * 8 + _SELECT[self.packed[self.rows, byte], rank]
        return np.minimum(col, self.width - 1)

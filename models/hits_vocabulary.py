"""The hits vocabulary: one token per 16th step = the set of drum classes hit at that step.

The paper's hits transformer writes H as a word sequence (paper, "Rhythm2Drum"): a word is the
combination of the 9 classes hit at one step, a 9-bit mask, spelled as a 9-character 0/1 string in
class order (kick first), the spelling of the reference implementation's ``vocab.json``.

Decisions:

* **Special tokens: pad (id 0) and bos (id 1)**, then the hit words from id 2. bos starts the decoder;
  pad fills batches of unequal length. No eos (windows have a fixed length, generation stops by
  count) and no unk (see below).
* **Built from counts over the training split**; a word is kept when it occurs ``min_count`` times
  (default 1). The empty word (no hit) is always kept. Word ids are stable: by descending count, ties
  by the mask value, and saved with the vocabulary.
* **Unseen combinations map to the nearest known word**: smallest Hamming distance between masks;
  among equals the word with fewer hits (dropping a hit beats inventing one), then the more frequent
  word, then the lower id. So ``encode`` is total and ``decode(encode(H))`` is H wherever H's words
  are known. ``encode(..., strict=True)`` raises instead.
* **JSON file** (``save`` / ``load``): format tag, version, class names, specials, words in id order,
  their counts and ``min_count``. Loading checks the format, the class names and the word spelling.

Compared with the reference's 152 words (``shared/data/rhythmicnet_reference/hits_vocab_152.json``,
no special tokens), which are the combinations of the whole dataset (every split: the 4/4 files hold
153, a superset of those 152): this project's training split (887 4/4 files, info.csv's split) holds
150 distinct words, 149 of them in the reference (the other, kick + mid tom + crash, occurs once).
The 3 reference words missing from it (010000011, 100001101, 100010011) occur once each in the
validation/test splits and map to 010000001, 100000101, 100000011. With min_count 1 the
vocabulary is 150 words + 2 specials = 152 ids, and covers 99.997 % of the validation steps and
99.994 % of the test steps (min_count 2 would leave 132 words).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rhythmicnet.errors import InputError
from rhythmicnet.fileio import write_text_atomic
from rhythmicnet.models.drum_grid import CLASS_NAMES, NUM_CLASSES

PAD, BOS = "<pad>", "<bos>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS)
NUM_MASKS = 1 << NUM_CLASSES
FORMAT = "rhythmicnet-hits-vocabulary"
VERSION = 1

_BITS = (1 << np.arange(NUM_CLASSES)).astype(np.int64)  # class c <-> bit c of the mask
_POPCOUNT = np.array([bin(m).count("1") for m in range(NUM_MASKS)], dtype=np.int64)


def hits_to_masks(hits: np.ndarray) -> np.ndarray:
    """(..., 9, T) 0/1 -> (..., T) int64 masks, bit c = class c."""
    h = np.asarray(hits)
    if h.ndim < 2 or h.shape[-2] != NUM_CLASSES:
        raise ValueError(f"hits must have shape (..., {NUM_CLASSES}, T), got {h.shape}")
    return (h.astype(bool).astype(np.int64) * _BITS[:, None]).sum(axis=-2)


def masks_to_hits(masks: np.ndarray) -> np.ndarray:
    """(..., T) masks -> (..., 9, T) bool."""
    return (np.asarray(masks, dtype=np.int64)[..., None, :] & _BITS[:, None]) != 0


def mask_to_word(mask: int) -> str:
    """Mask -> 9-character 0/1 string in class order (kick first), as the reference spells words."""
    return "".join("1" if (mask >> c) & 1 else "0" for c in range(NUM_CLASSES))


def word_to_mask(word: str) -> int:
    if len(word) != NUM_CLASSES or set(word) - {"0", "1"}:
        raise ValueError(f"a hits word is {NUM_CLASSES} characters of 0/1, got {word!r}")
    return sum(1 << c for c, ch in enumerate(word) if ch == "1")


def count_masks(hits_list: Iterable[np.ndarray]) -> np.ndarray:
    """Occurrences of each of the 512 masks over the steps of the given (9, T) hit matrices. Shape (512,)."""
    counts = np.zeros(NUM_MASKS, dtype=np.int64)
    for h in hits_list:
        counts += np.bincount(hits_to_masks(h), minlength=NUM_MASKS)
    return counts


def read_reference_words(path: str | os.PathLike[str]) -> list[str]:
    """The words of a reference ``{word: id}`` JSON (e.g. hits_vocab_152.json), in id order."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: cannot read a word list ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a JSON object {{word: id}}")
    words = sorted(data, key=lambda w: data[w])
    for w in words:
        try:
            word_to_mask(w)
        except ValueError as e:
            raise InputError(f"{p}: {e}") from e
    return words


@dataclass(frozen=True, eq=False)
class HitsVocabulary:
    """Token ids for hit combinations. ``masks[i]`` is the mask of word id ``NUM_SPECIAL + i``.

    ``counts`` are the training counts of the words (same order), kept for ties and for reports.
    """

    masks: tuple[int, ...]
    counts: tuple[int, ...] = ()
    min_count: int = 1
    _lookup: np.ndarray = field(init=False, repr=False)  # (512,) mask -> id (nearest known word)
    _exact: np.ndarray = field(init=False, repr=False)  # (512,) bool: mask is a word

    num_special = len(SPECIAL_TOKENS)
    pad_id = 0
    bos_id = 1

    def __post_init__(self) -> None:
        masks = tuple(int(m) for m in self.masks)
        if not masks:
            raise ValueError("a hits vocabulary needs at least one word")
        if len(set(masks)) != len(masks) or min(masks) < 0 or max(masks) >= NUM_MASKS:
            raise ValueError("word masks must be distinct values in 0..511")
        counts = tuple(int(c) for c in self.counts) if self.counts else (0,) * len(masks)
        if len(counts) != len(masks):
            raise ValueError("counts and masks differ in length")
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "counts", counts)
        m = np.asarray(masks, dtype=np.int64)
        c = np.asarray(counts, dtype=np.int64)
        ids = np.arange(len(m)) + self.num_special
        every = np.arange(NUM_MASKS, dtype=np.int64)
        dist = _POPCOUNT[every[:, None] ^ m[None, :]]  # (512, V) Hamming distance
        # One integer key per (mask, word), compared as (distance, hits, -count, id).
        cmax = int(c.max())
        key = ((dist * 16 + _POPCOUNT[m][None, :]) * (cmax + 1) + (cmax - c)[None, :]) * 1024 + ids[None, :]
        choice = key.argmin(axis=1)
        exact = np.zeros(NUM_MASKS, dtype=bool)
        exact[m] = True
        object.__setattr__(self, "_lookup", ids[choice])
        object.__setattr__(self, "_exact", exact)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_counts(cls, counts: np.ndarray, min_count: int = 1) -> HitsVocabulary:
        """From (512,) mask counts: words with count >= min_count, plus the empty word."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (NUM_MASKS,):
            raise ValueError(f"counts must have shape ({NUM_MASKS},)")
        keep = np.flatnonzero(counts >= max(min_count, 1))
        if 0 not in keep:
            keep = np.concatenate([[0], keep])
        order = keep[np.lexsort((keep, -counts[keep]))]
        return cls(tuple(order.tolist()), tuple(counts[order].tolist()), int(min_count))

    @classmethod
    def build(cls, hits_list: Iterable[np.ndarray], min_count: int = 1) -> HitsVocabulary:
        """From the (9, T) hit matrices of the training split."""
        return cls.from_counts(count_masks(hits_list), min_count)

    @classmethod
    def from_words(cls, words: Sequence[str], counts: Sequence[int] = ()) -> HitsVocabulary:
        """From 0/1 words in id order (e.g. :func:`read_reference_words`)."""
        return cls(tuple(word_to_mask(w) for w in words), tuple(counts))

    # --- properties ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of token ids (specials + words)."""
        return self.num_special + len(self.masks)

    def __len__(self) -> int:
        return self.size

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(mask_to_word(m) for m in self.masks)

    @property
    def silence_id(self) -> int:
        """The id of the empty word (no hit)."""
        return int(self._lookup[0])

    def word_mask(self) -> np.ndarray:
        """(size,) bool, True for hit words (False for specials): mask logits with it when sampling."""
        out = np.ones(self.size, dtype=bool)
        out[: self.num_special] = False
        return out

    def is_known(self, hits: np.ndarray) -> np.ndarray:
        """(..., T) bool: the step's combination is a word of the vocabulary."""
        return self._exact[hits_to_masks(hits)]

    def coverage(self, hits_list: Iterable[np.ndarray]) -> float:
        """Share of steps whose combination is a known word."""
        known = total = 0
        for h in hits_list:
            k = self.is_known(h)
            known += int(k.sum())
            total += k.size
        return known / total if total else 1.0

    # --- encode / decode ----------------------------------------------------------------------

    def encode(self, hits: np.ndarray, *, strict: bool = False) -> np.ndarray:
        """(..., 9, T) hits -> (..., T) int64 token ids (a batch (N, 9, T) works too).

        Unseen combinations -> the nearest word (strict: ValueError)."""
        masks = hits_to_masks(hits)
        if strict and not np.all(self._exact[masks]):
            bad = sorted({mask_to_word(int(m)) for m in masks[~self._exact[masks]]})
            raise ValueError(f"combinations not in the vocabulary: {', '.join(bad)}")
        return self._lookup[masks].astype(np.int64)

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """(..., T) token ids -> (..., 9, T) bool hits. Special or out-of-range ids raise ValueError."""
        a = np.asarray(ids, dtype=np.int64)
        if a.ndim < 1:
            raise ValueError(f"ids must have shape (..., T), got {a.shape}")
        if np.any(a < self.num_special) or np.any(a >= self.size):
            raise ValueError(f"ids must be hit words ({self.num_special}..{self.size - 1}); specials do not decode")
        masks = np.asarray(self.masks, dtype=np.int64)[a - self.num_special]
        return masks_to_hits(masks)

    def nearest(self, hits: np.ndarray) -> np.ndarray:
        """(..., 9, T) -> (..., 9, T): each step replaced by its vocabulary word (identity on known words)."""
        return self.decode(self.encode(hits))

    # --- files ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "classes": list(CLASS_NAMES),
            "specials": {name: i for i, name in enumerate(SPECIAL_TOKENS)},
            "min_count": self.min_count,
            "words": list(self.words),
            "counts": list(self.counts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HitsVocabulary:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} document")
        if list(data.get("classes", [])) != list(CLASS_NAMES):
            raise ValueError("the vocabulary's drum classes differ from this program's")
        if dict(data.get("specials", {})) != {name: i for i, name in enumerate(SPECIAL_TOKENS)}:
            raise ValueError("the vocabulary's special tokens differ from this program's")
        words = list(data["words"])
        return cls(tuple(word_to_mask(w) for w in words), tuple(data.get("counts", ())), int(data.get("min_count", 1)))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the vocabulary as JSON (atomic)."""
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HitsVocabulary:
        """Read a vocabulary written by :meth:`save`; problems raise InputError naming the file."""
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{p}: not a hits vocabulary ({e})") from e

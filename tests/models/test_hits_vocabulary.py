import json

import numpy as np
import pytest

from rhythmicnet.errors import InputError
from rhythmicnet.models.hits_vocabulary import (
    NUM_MASKS,
    HitsVocabulary,
    count_masks,
    hits_to_masks,
    mask_to_word,
    masks_to_hits,
    word_to_mask,
)


def _hits(*words):
    """(9, T) hits from 0/1 words, one per step."""
    return masks_to_hits(np.array([word_to_mask(w) for w in words]))


def test_words_masks_and_hits_agree():
    assert word_to_mask("100000000") == 1 and word_to_mask("000000001") == 256
    assert mask_to_word(3) == "110000000"
    assert all(word_to_mask(mask_to_word(m)) == m for m in range(NUM_MASKS))
    h = _hits("101000001", "000000000", "010000000")
    assert h.shape == (9, 3) and h[0, 0] and h[2, 0] and h[8, 0] and h[1, 2]
    assert np.array_equal(masks_to_hits(hits_to_masks(h)), h)
    with pytest.raises(ValueError):
        word_to_mask("10000000")


def test_build_counts_min_count_and_stable_ids():
    train = [_hits("101000000", "101000000", "000000000", "011000000", "010000000", "101000000", "000000001")]
    counts = count_masks(train)
    v = HitsVocabulary.build(train, min_count=1)
    assert v.pad_id == 0 and v.bos_id == 1 and v.num_special == 2
    # by descending count, ties by mask value
    assert v.words == ("101000000", "000000000", "010000000", "011000000", "000000001")
    assert v.counts == (3, 1, 1, 1, 1) and v.size == 7 and len(v) == 7
    v2 = HitsVocabulary.from_counts(counts, min_count=2)
    assert v2.words == ("101000000", "000000000")  # the empty word is always kept
    assert HitsVocabulary.from_counts(counts, min_count=5).words == ("000000000",)
    assert v.silence_id == 3
    assert np.array_equal(v.word_mask(), [False, False, True, True, True, True, True])


def test_encode_decode_round_trip_on_known_words():
    v = HitsVocabulary.from_words(["000000000", "100000000", "010000000", "101000000"])
    h = _hits("100000000", "000000000", "101000000", "010000000")
    ids = v.encode(h)
    assert ids.dtype == np.int64 and ids.tolist() == [3, 2, 5, 4]
    assert np.array_equal(v.decode(ids), h)
    assert v.is_known(h).all() and v.coverage([h]) == 1.0
    batch = np.stack([h, h[:, ::-1]])  # (N, 9, T) works as a batch
    assert np.array_equal(v.encode(batch), np.stack([ids, ids[::-1]]))
    assert np.array_equal(v.decode(v.encode(batch)), batch)
    with pytest.raises(ValueError, match="specials"):
        v.decode(np.array([0, 2]))
    with pytest.raises(ValueError):
        v.decode(np.array([7]))


def test_unseen_maps_to_nearest_preferring_fewer_hits():
    words = ["000000000", "100000000", "110000000", "111000000", "001000001", "000100000"]
    v = HitsVocabulary(tuple(word_to_mask(w) for w in words), counts=(10, 9, 8, 100, 6, 1))
    # kick+hi-hat: distance 1 from kick (1 hit) and from kick+snare+hi-hat (3 hits, far more frequent):
    # fewer hits wins before the count
    assert np.array_equal(v.nearest(_hits("101000000")), _hits("100000000"))
    # kick+open hi-hat: distance 1 from kick and from open hi-hat, both 1 hit: the count decides (9 > 1)
    assert np.array_equal(v.nearest(_hits("100100000")), _hits("100000000"))
    # the smallest distance comes first: snare+hi-hat is 1 from 111000000 and 2 from everything else
    assert np.array_equal(v.nearest(_hits("011000000")), _hits("111000000"))
    # strict mode refuses unseen combinations
    with pytest.raises(ValueError, match="011000000"):
        v.encode(_hits("011000000"), strict=True)
    assert v.coverage([_hits("011000000", "100000000")]) == 0.5
    # exhaustive: every mask maps to a word at the minimum Hamming distance
    got = hits_to_masks(v.nearest(masks_to_hits(np.arange(NUM_MASKS))))
    dist = [bin(a ^ int(b)).count("1") for a, b in zip(range(NUM_MASKS), got, strict=True)]
    best = [min(bin(a ^ m).count("1") for m in v.masks) for a in range(NUM_MASKS)]
    assert dist == best


def test_save_load_json(tmp_path):
    v = HitsVocabulary.build([_hits("101000000", "000000000", "011000000", "000000001")], min_count=1)
    p = v.save(tmp_path / "vocab.json")
    w = HitsVocabulary.load(p)
    assert w.words == v.words and w.counts == v.counts and w.min_count == 1
    data = json.loads(p.read_text())
    assert data["specials"] == {"<pad>": 0, "<bos>": 1} and data["words"][0] == v.words[0]
    data["classes"][0] = "bass"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="bad.json"):
        HitsVocabulary.load(tmp_path / "bad.json")
    with pytest.raises(InputError):
        HitsVocabulary.load(tmp_path / "missing.json")

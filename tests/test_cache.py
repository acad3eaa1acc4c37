"""The feature cache: keys, invalidation, corrupt entries, atomic writes, worker processes, shards."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from corpus_fixtures import clip, garbage
from emospec.config import FeatureConfig
from emospec.data.cache import FeatureCache, audio_digest, default_cache_dir
from emospec.data.dataset import compute_features, featurise, fill_cache, parse_shard, shard
from emospec.errors import ConfigError

CFG = FeatureConfig()
OTHER = replace(CFG, n_mels=2 * CFG.n_mels)
"""Another feature config (twice the mel bands): another cache folder, other shapes."""


@pytest.fixture
def clips(tmp_path):
    return [str(clip(tmp_path / "audio" / f"c{i}.wav", seconds=0.2 + 0.05 * i, seed=i)) for i in range(5)]


def _entries(cache: FeatureCache):
    return sorted(cache.folder.glob("*/*.feat"))


def test_cached_features_equal_computed_and_second_read_hits(tmp_path, clips):
    cache = FeatureCache(tmp_path / "cache", CFG)
    plain, p0 = compute_features(clips, CFG, progress=False)
    first, p1 = compute_features(clips, CFG, progress=False, cache=cache)
    assert p0 == p1 == []
    assert len(_entries(cache)) == 5
    for a, b in zip(plain, first):
        assert torch.equal(a, b)
    assert [f.shape[-1] for f in first] == [CFG.n_frames(int(round((0.2 + 0.05 * i) * 16000))) for i in range(5)]
    # a hit returns the stored array bit for bit without decoding
    for path, ref in zip(clips, plain):
        arr, hit = featurise(path, CFG, cache)
        assert hit and np.array_equal(arr, ref.numpy())


def test_key_is_content_not_path_and_changes_with_audio_and_config(tmp_path, clips):
    cache = FeatureCache(tmp_path / "cache", CFG)
    fill_cache(clips, cache, progress=False)
    moved = tmp_path / "elsewhere.wav"
    shutil.copy(clips[0], moved)
    assert featurise(str(moved), CFG, cache)[1] is True  # same bytes elsewhere: a hit
    clip(moved, seconds=0.2, seed=99)  # new content under the same name: a miss
    arr, hit = featurise(str(moved), CFG, cache)
    assert not hit and audio_digest(moved)[0] != audio_digest(clips[0])[0]
    other = FeatureCache(tmp_path / "cache", OTHER)
    assert other.folder != cache.folder
    arr, hit = featurise(clips[0], other.config, other)
    assert not hit and arr.shape[:2] == (3, OTHER.n_mels)
    assert featurise(clips[0], other.config, other)[1] is True
    assert FeatureCache(tmp_path / "cache", OTHER).config_hash == other.config_hash


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "foreign", "wrong_shape"])
def test_corrupt_entry_is_detected_and_recomputed(tmp_path, clips, damage):
    cache = FeatureCache(tmp_path / "cache", CFG)
    ref, _ = featurise(clips[1], CFG, cache)
    digest = audio_digest(clips[1])[0]
    entry = cache.entry(digest)
    blob = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        entry.write_bytes(blob[:-100] + bytes([blob[-100] ^ 0xFF]) + blob[-99:])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "foreign":
        np.save(entry.with_suffix(".npy"), ref)
        entry.with_suffix(".npy").replace(entry)
    else:  # a well-formed entry of the wrong shape (written under another n_mels)
        FeatureCache(tmp_path / "other", OTHER).store(digest, np.zeros((3, OTHER.n_mels, 5), np.float32))
        shutil.copy(FeatureCache(tmp_path / "other", OTHER).entry(digest), entry)
    assert cache.load(digest) is None
    assert not entry.exists()  # the bad entry was removed ...
    arr, hit = featurise(clips[1], CFG, cache)
    assert not hit and np.array_equal(arr, ref)  # ... recomputed ...
    assert np.array_equal(cache.load(digest), ref)  # ... and stored again


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path, clips):
    cache = FeatureCache(tmp_path / "cache", CFG)
    fill_cache(clips, cache, progress=False)
    files = [p for p in cache.folder.rglob("*") if p.is_file()]
    assert sorted(p.suffix for p in files) == [".feat"] * 5 + [".json"]
    assert not [p for p in files if p.name.startswith(".")]


def test_parallel_workers_fill_one_cache(tmp_path, clips):
    cache = FeatureCache(tmp_path / "cache", CFG)
    # every clip three times: several processes write the same keys concurrently
    paths = clips * 3 + [str(garbage(tmp_path / "bad.wav"))]
    stats = fill_cache(paths, cache, workers=2, progress=False)
    assert stats.hits + stats.computed == 15 and stats.computed >= 5
    assert len(stats.problems) == 1 and "bad.wav: not a readable audio file" in stats.problems[0]
    assert len(_entries(cache)) == 5
    serial, _ = compute_features(clips, CFG, progress=False)
    par, problems = compute_features(paths, CFG, progress=False, cache=cache, workers=2)
    assert par[-1] is None and len(problems) == 1
    for k, f in enumerate(par[:-1]):
        assert torch.equal(f, serial[k % 5])
    again = fill_cache(clips, cache, progress=False)
    assert (again.hits, again.computed, again.problems) == (5, 0, [])


def test_cache_config_must_match(tmp_path, clips):
    with pytest.raises(ConfigError, match="different FeatureConfig"):
        compute_features(clips, OTHER, cache=FeatureCache(tmp_path, CFG), progress=False)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOSPEC_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("EMOSPEC_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "emospec", "features")


def test_shards_are_disjoint_cover_and_deterministic():
    items = [f"utt{i:03d}" for i in range(103)]
    parts = [shard(items[::-1], i, 4) for i in range(1, 5)]
    assert sorted(sum(parts, [])) == items
    assert [len(p) for p in parts] == [26, 26, 26, 25]
    assert parts == [shard(items, i, 4) for i in range(1, 5)]  # order of the input does not matter
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "x", "1/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)

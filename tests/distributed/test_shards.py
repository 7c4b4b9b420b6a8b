"""Sharded feature extraction on the demo: two processes = one process; finished shards are skipped;
training and alignment read the union exactly as they read the windows."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest
import torch

from bioxbridge_core.alignment.shards import (DONE, extract_shard, open_union, parse_shard, pseudo_labels_from,
                                              shard_folder, shard_recordings)
from bioxbridge_core.errors import ConfigError
from bioxbridge_core.pipeline import PAIR_SPLITS, PipelineConfig, prepare_data

CFG = PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", device="cpu")


def _shard(out: str, index: int, count: int) -> None:
    torch.set_num_threads(1)
    extract_shard(CFG, out, index=index, count=count)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """One folder written by two concurrent processes (shards 0/2 and 1/2), one by a single process."""
    root = tmp_path_factory.mktemp("shards")
    # the cache folder conftest gives every test (demo files live there), set before the children fork
    os.environ["BIOXBRIDGE_CACHE"] = str(tmp_path_factory.getbasetemp() / "bioxbridge-cache")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_shard, args=(str(root / "two"), i, 2)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    _shard(str(root / "one"), 0, 1)
    return root


def test_parse_and_deal():
    assert parse_shard("1/4") == (1, 4) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("4/4", "-1/2", "1", "a/b"):
        with pytest.raises(ConfigError, match="I/N"):
            parse_shard(bad)
    from types import SimpleNamespace as R

    recs = [R(split=sp, subject=su) for sp, su in zip(["pair", "train", "val", "pair", "pair", "test"],
                                                       ["a", "b", "c", "a", "d", "e"])]
    parts = [shard_recordings(recs, i, 2, splits=PAIR_SPLITS) for i in range(2)]
    assert parts[0].tolist() == [0, 3] and parts[1].tolist() == [2, 4]  # every other pair/val recording
    by_subject = [shard_recordings(recs, i, 2, splits=PAIR_SPLITS, by="subject") for i in range(2)]
    assert by_subject[0].tolist() == [0, 3, 4] and by_subject[1].tolist() == [2]  # subjects a, d | c


def test_two_processes_merge_to_what_one_process_writes(shards):
    one, two = open_union(shards / "one"), open_union(shards / "two")
    assert len(one) == len(two) > 0 and one.arrays.keys() == two.arrays.keys()
    for k in one.arrays:
        np.testing.assert_allclose(two.arrays[k], one.arrays[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert one.meta.equals(two.meta)
    # the union lists the pair windows a single process pairs, in the same order
    pair = prepare_data(CFG).windows.split(*PAIR_SPLITS)
    two.check_rows(pair.meta)
    with pytest.raises(ConfigError, match="do not match"):
        two.check_rows(pair.meta.iloc[::-1])


def test_finished_shard_is_skipped_and_settings_are_checked(shards):
    folder = shard_folder(shards / "two", 1, 2)
    stamp = (folder / DONE).stat().st_mtime_ns
    again = extract_shard(CFG, shards / "two", index=1, count=2)
    assert again.skipped and (folder / DONE).stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="other settings"):
        extract_shard(CFG, shards / "two", index=1, count=2, target_dtype="float16")


def test_union_needs_every_shard(tmp_path, shards):
    import shutil

    part = tmp_path / "part"
    shutil.copytree(shard_folder(shards / "two", 0, 2), shard_folder(part, 0, 2))
    with pytest.raises(ConfigError, match="1 of 2 shards are missing or unfinished \\(1/2\\)"):
        open_union(part)
    with pytest.raises(ConfigError, match="no feature shards"):
        open_union(tmp_path / "empty")


def test_training_and_alignment_read_the_union_like_the_windows(shards):
    from bioxbridge_core.alignment import align
    from bioxbridge_core.bridge import BridgeConfig
    from bioxbridge_core.models.heads import pseudo_labels, train_task_head
    from bioxbridge_core.training import BridgeTrainer

    data = prepare_data(CFG)
    pair, train = data.windows.split(*PAIR_SPLITS), data.windows.split("train").labelled()
    union = open_union(shards / "two")
    head = train_task_head(data.old_encoder, train.x_old, train.labels(), label_names=train.label_names,
                           groups=train.subjects, seed=0)
    y = pseudo_labels(data.old_encoder, head, pair.x_old)
    np.testing.assert_array_equal(pseudo_labels_from(union, head), y)
    direct = align(data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, y, groups=pair.subjects, n_perm=1,
                   n_splits=3)
    shared = align(data.old_encoder, data.new_encoder, None, None, y, groups=pair.subjects, n_perm=1,
                   n_splits=3, features_new=union.side("new", "out"), features_old=union.side("old", "in"))
    assert shared.selected == direct.selected
    np.testing.assert_allclose(shared.cka, direct.cka, atol=1e-5)

    cfg = BridgeConfig(epochs=2, batch_size=16, n_prototypes=8)
    kw = dict(new_position="layer4.0", old_position="blocks.4", groups=pair.subjects)
    a = BridgeTrainer(cfg, device="cpu").fit(data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, **kw)
    b = BridgeTrainer(cfg, device="cpu").fit(
        data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, **kw,
        features={"new:out:layer4.0": union.arrays["new:out:layer4.0"], "old:last": union.arrays["old:last"]})
    for k, v in a.bridge_.state_dict().items():
        torch.testing.assert_close(b.bridge_.state_dict()[k], v, atol=1e-5, rtol=1e-4)

import numpy as np
import pandas as pd
import pytest

from camtrap.labels import COLUMNS
from hakuna.cli import main


def _files(tmp_path, n=6):
    ids = pd.Index([f"SER_S5#A#1#{i}" for i in range(n)], name="seq_id")
    labels = pd.DataFrame(0, index=ids, columns=list(COLUMNS))
    labels["empty"] = 1
    labels.iloc[0, labels.columns.get_loc("empty")] = 0
    labels.iloc[0, labels.columns.get_loc("zebra")] = 1
    preds = pd.DataFrame(0.01, index=ids, columns=list(COLUMNS))
    preds["empty"] = 0.8
    labels.to_csv(tmp_path / "labels.csv")
    preds.to_csv(tmp_path / "sub.csv")
    return preds, labels


def test_score_prints_value_last(tmp_path, capsys):
    preds, labels = _files(tmp_path)
    assert main(["score", str(tmp_path / "sub.csv"), str(tmp_path / "labels.csv"), "--per-class"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    y, p = labels.to_numpy(float), np.clip(preds.to_numpy(float), 1e-15, 1 - 1e-15)
    expected = float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
    assert float(lines[-1]) == pytest.approx(expected, abs=1e-9)
    assert len(lines) == 55 and lines[15].split()[0] == "empty"


def test_score_refuses_missing_rows(tmp_path, capsys):
    preds, _ = _files(tmp_path)
    preds.iloc[1:].to_csv(tmp_path / "sub.csv")
    assert main(["score", str(tmp_path / "sub.csv"), str(tmp_path / "labels.csv")]) == 2
    assert "1 seq_id(s) missing: 'SER_S5#A#1#0'" in capsys.readouterr().err


def test_synth_then_summary(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--sequences", "20", "--seed", "1", "--size", "128x96",
                 "--workers", "1", "--no-progress"]) == 0  # fmt: skip
    first = capsys.readouterr().out
    assert "[train]" in first and "[test]" in first
    assert main(["summary", "--data", str(out)]) == 0
    assert capsys.readouterr().out == first


def test_bad_size_is_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--out", str(tmp_path), "--size", "big"])
    assert exc.value.code == 2


def test_test_part_turns_a_season_into_the_competition_test_layout(small_synth, tmp_path, capsys):
    """``data test-part``: a season's folder becomes a test part that ``read_test`` (what run-submission and
    predict read) opens with every frame there, its format rows the season's sequences, its answers scoreable."""
    import shutil

    from camtrap.dataset import read_labels, read_test, read_train

    root = tmp_path / "data"
    shutil.copytree(small_synth.root / "train", root / "train")  # the command writes into the season's folder
    labels = tmp_path / "s04-labels.csv"
    assert main(["data", "test-part", "--data", str(root), "--season", "4", "--labels", str(labels)]) == 0
    folder = root / "train" / "SnapshotSerengeti_S04_v2_0"
    assert str(folder) in capsys.readouterr().out
    train = read_train(root / "train" / "train_metadata.csv", root / "train" / "train_labels.csv", root / "train")
    season = train.frames[train.frames["season"] == 4]
    part, fmt = read_test(folder)
    assert sorted(part.frames["file_name"]) == sorted(season["file_name"]) and len(part.frames) > 0
    assert all((folder / f).is_file() for f in part.frames["file_name"])  # images where the test layout puts them
    assert set(fmt.index) == set(season["seq_id"]) and list(fmt.columns) == list(COLUMNS)
    answers = read_labels(labels)
    assert answers.equals(train.labels.loc[fmt.index, list(COLUMNS)].astype(answers.dtypes.iloc[0]))
    priors = pd.DataFrame([answers.mean().clip(0.01, 0.99)] * len(answers), index=answers.index)
    priors.to_csv(tmp_path / "sub.csv")
    assert main(["score", str(tmp_path / "sub.csv"), str(labels)]) == 0
    assert main(["data", "test-part", "--data", str(root), "--season", "9", "--labels", str(labels)]) == 2
    assert "no such season" in capsys.readouterr().err

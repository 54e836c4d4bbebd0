from pathlib import Path

import pandas as pd
import pytest

from camtrap.dataset import ImageLayout, read_labels, read_metadata, read_test, read_train, season_split
from camtrap.fileio import DataError
from camtrap.labels import COLUMNS

HEADER = "seq_id," + ",".join(COLUMNS)


def _row(seq_id: str, **on: int) -> str:
    return seq_id + "," + ",".join(str(on.get(c, 0)) for c in COLUMNS)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


META = """seq_id,file_name,datetime
SER_S1#B04#1#1,S1/B04/B04_R1/S1_B04_R1_PICT0002.JPG,2010-07-18 16:26:15
SER_S1#B04#1#1,S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG,2010-07-18 16:26:14
SER_S2#B04#1#2,S2/B04/B04_R1/S2_B04_R1_PICT0010.JPG,2010-07-18 17:00:00
"""


def test_reads_seasons_and_frame_order(tmp_path):
    meta = read_metadata(_write(tmp_path, "m.csv", META))
    first_two = ["S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG", "S1/B04/B04_R1/S1_B04_R1_PICT0002.JPG"]
    assert meta["file_name"].tolist()[:2] == first_two
    assert meta["frame"].tolist() == [1, 2, 10]
    assert meta["season"].tolist() == [1, 1, 2]


def test_train_paths_and_split(tmp_path):
    meta = _write(tmp_path, "m.csv", META)
    labels = _write(tmp_path, "l.csv", "\n".join([HEADER, _row("SER_S1#B04#1#1", zebra=1, wildebeest=1),
                                                  _row("SER_S2#B04#1#2", empty=1)]) + "\n")
    data = read_train(meta, labels, tmp_path / "imgs")
    first = tmp_path / "imgs/SnapshotSerengeti_S01_v2_0/S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG"
    assert data.frame_refs()[0].path == first
    assert data.frame_refs()[0].seq_id == "SER_S1#B04#1#1"
    assert data.labels.loc["SER_S1#B04#1#1", ["zebra", "wildebeest", "empty"]].tolist() == [1, 1, 0]
    train, val = season_split(data)
    assert list(train.seq_ids) == ["SER_S1#B04#1#1"] and list(val.seq_ids) == ["SER_S2#B04#1#2"]
    flat = read_train(meta, labels, tmp_path, ImageLayout.FLAT)
    assert flat.frame_refs()[2].path == tmp_path / "S2/B04/B04_R1/S2_B04_R1_PICT0010.JPG"
    with pytest.raises(ValueError, match=r"validation season\(s\) \[7\] not in the data"):
        season_split(data, [7])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seq_id,datetime\nSER_S1#A#1#1,x\n", r"m.csv:1: missing column 'file_name'"),
        ("seq_id,file_name\nSER_S1#A#1#1,a.JPG\n,b.JPG\n", r"m.csv:3: empty seq_id"),
        ("seq_id,file_name\nSER_S1#A#1#1,a.JPG\nSER_S1#A#1#1,a.JPG\n",
         r"m.csv:3: image 'a.JPG' listed twice \(first for 'SER_S1#A#1#1'\)"),
        ("seq_id,file_name\nSER_S1#A#1#1,a.JPG\nbogus,b.JPG\n", r"m.csv:3: seq_id 'bogus' has no season"),
    ],
)
def test_metadata_errors(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_metadata(_write(tmp_path, "m.csv", text), require_season=True)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([HEADER.replace("seq_id", "id"), _row("a", empty=1)], r"l.csv:1: missing column 'seq_id'"),
        ([HEADER + ",unicorn", _row("a", empty=1) + ",0"], r"l.csv:1: unknown class column\(s\) \['unicorn'\]"),
        ([HEADER.replace(",zebra", ""), _row("a", empty=1).rsplit(",", 2)[0] + ",0"],
         r"l.csv:1: missing class column\(s\) \['zebra'\]"),
        ([HEADER, _row("a", empty=1), _row("b", zebra=1), _row("a", zebra=1)],
         r"l.csv:4: duplicate seq_id 'a' \(first on line 2\)"),
        ([HEADER, _row("a", empty=1), _row("b", zebra=2)], r"l.csv:3: zebra='2' for 'b'; labels must be 0 or 1"),
        ([HEADER, _row("a", empty=1), _row("b")], r"l.csv:3: seq_id 'b' has no class set"),
    ],
)
def test_label_errors(tmp_path, lines, message):
    with pytest.raises(DataError, match=message):
        read_labels(_write(tmp_path, "l.csv", "\n".join(lines) + "\n"))


def test_label_row_without_images(tmp_path):
    meta = _write(tmp_path, "m.csv", META)
    labels = _write(tmp_path, "l.csv", "\n".join([HEADER, _row("SER_S1#B04#1#1", empty=1),
                                                  _row("SER_S1#B04#1#99", zebra=1)]) + "\n")
    with pytest.raises(DataError, match=r"l.csv:3: seq_id 'SER_S1#B04#1#99' has a label row but no images"):
        read_train(meta, labels, tmp_path)


def test_unlabelled_sequences_are_dropped_with_warning(tmp_path, caplog):
    meta = _write(tmp_path, "m.csv", META)
    labels = _write(tmp_path, "l.csv", "\n".join([HEADER, _row("SER_S1#B04#1#1", empty=1)]) + "\n")
    data = read_train(meta, labels, tmp_path)
    assert data.frames["seq_id"].unique().tolist() == ["SER_S1#B04#1#1"]
    assert "1 sequence(s) have images but no label row" in caplog.text


def test_read_test_checks_format(tmp_path):
    _write(tmp_path, "test_metadata.csv", META)
    fmt = pd.DataFrame(0.0, index=pd.Index(["SER_S1#B04#1#1", "SER_S2#B04#1#2"], name="seq_id"), columns=list(COLUMNS))
    fmt.to_csv(tmp_path / "submission_format.csv")
    frames, got = read_test(tmp_path)
    assert list(got.index) == list(fmt.index) and len(frames.frames) == 3
    fmt[list(COLUMNS[::-1])].to_csv(tmp_path / "submission_format.csv")
    with pytest.raises(DataError, match=r"submission_format.csv:1: class columns out of order"):
        read_test(tmp_path)

import json

import pytest

from camtrap.fileio import DataError
from camtrap.lila import read_lila_boxes, read_lila_sequences


def _cct(tmp_path, annotations, categories=None):
    data = {
        "categories": categories or [{"id": 0, "name": "empty"}, {"id": 1, "name": "human"},
                                     {"id": 2, "name": "zebra"}, {"id": 3, "name": "lioncub"}],
        "images": [{"id": f"S1/A/A_R1/S1_A_R1_PICT000{i}", "file_name": f"S1/A/A_R1/S1_A_R1_PICT000{i}.JPG",
                    "seq_id": f"SER_S1#A#1#{(i + 1) // 2}", "frame_num": 1, "datetime": "2010-07-18 16:26:14",
                    "width": 100, "height": 50} for i in range(1, 7)],
        "annotations": annotations,
    }  # fmt: skip
    path = tmp_path / "cct.json"
    path.write_text(json.dumps(data))
    return path


def test_categories_mapped_and_dropped(tmp_path):
    path = _cct(tmp_path, [
        {"id": "a", "category_id": 2, "seq_id": "SER_S1#A#1#1"},
        {"id": "b", "category_id": 0, "seq_id": "SER_S1#A#1#1"},  # empty + zebra -> zebra
        {"id": "c", "category_id": 1, "seq_id": "SER_S1#A#1#2"},  # human only -> dropped
        {"id": "d", "category_id": 3, "seq_id": "SER_S1#A#1#3"},  # lioncub -> lionfemale
    ])  # fmt: skip
    data = read_lila_sequences(path, tmp_path)
    assert list(data.labels.index) == ["SER_S1#A#1#1", "SER_S1#A#1#3"]
    assert data.labels.loc["SER_S1#A#1#1", ["zebra", "empty"]].tolist() == [1, 0]
    assert data.labels.loc["SER_S1#A#1#3", "lionfemale"] == 1
    assert set(data.frames["seq_id"]) == {"SER_S1#A#1#1", "SER_S1#A#1#3"}


def test_unknown_category_names_file(tmp_path):
    path = _cct(tmp_path, [], categories=[{"id": 0, "name": "unicorn"}])
    with pytest.raises(DataError, match=r"cct.json: categories\[0\]: unknown category 'unicorn'"):
        read_lila_sequences(path, tmp_path)


def test_bad_json_names_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [\n  {"id": 1,,}\n]}')
    with pytest.raises(DataError, match=r"bad.json:2: not valid JSON"):
        read_lila_sequences(path, tmp_path)


def test_boxes_normalised(tmp_path):
    path = _cct(tmp_path, [{"id": "x", "image_id": "S1/A/A_R1/S1_A_R1_PICT0001", "category_id": 1,
                            "bbox": [10, 5, 50, 25]}], categories=[{"id": 1, "name": "animal"}])  # fmt: skip
    boxes = read_lila_boxes(path)
    assert boxes.iloc[0].tolist() == ["S1/A/A_R1/S1_A_R1_PICT0001.JPG", "animal", 0.1, 0.1, 0.5, 0.5]

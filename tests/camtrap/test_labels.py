import pytest

from camtrap.labels import COLUMNS, EMPTY_INDEX, SPECIES, UnknownCategoryError, check_columns, column_for_lila
from tests.conftest import shared_path


def test_schema_shape():
    assert len(COLUMNS) == 54 and len(set(COLUMNS)) == 54
    assert COLUMNS[0] == "aardvark" and COLUMNS[15] == "empty" and COLUMNS[-1] == "zorilla"
    assert EMPTY_INDEX == 15
    assert len(SPECIES) == 53 and "empty" not in SPECIES
    assert list(COLUMNS) == sorted(COLUMNS)


def test_order_matches_competition_file():
    path = shared_path("data", "competition", "class_columns_54.txt")
    assert path.read_text().split() == list(COLUMNS)


def test_order_matches_sample_submission_header():
    path = shared_path("data", "competition", "sample_submission_S10_362seqs.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header[0] == "seq_id" and header[1:] == list(COLUMNS)


@pytest.mark.parametrize(
    ("name", "column"),
    [("zebra", "zebra"), ("Zebra", "zebra"), ("lioncub", "lionfemale"), ("vervetmonkey", "monkeyvervet"),
     ("empty", "empty"), ("human", None), ("fire", None), ("hyenabrown", None), ("wilddog", None),
     ("kudu", None), ("pangolin", None)],
)
def test_lila_mapping(name, column):
    assert column_for_lila(name) == column


def test_unknown_lila_category():
    with pytest.raises(UnknownCategoryError, match="'unicorn'"):
        column_for_lila("unicorn")


def test_check_columns_messages():
    check_columns(COLUMNS, source="x")
    cols = list(COLUMNS)
    cols[0], cols[1] = cols[1], cols[0]
    with pytest.raises(ValueError, match="out of order; position 1 is 'aardwolf', expected 'aardvark'"):
        check_columns(cols, source="x")
    with pytest.raises(ValueError, match=r"missing \['zorilla'\], unexpected \['zorro'\]"):
        check_columns(list(COLUMNS[:-1]) + ["zorro"], source="x")
    with pytest.raises(ValueError, match=r"duplicated class columns \['zebra'\]"):
        check_columns(list(COLUMNS) + ["zebra"], source="x")

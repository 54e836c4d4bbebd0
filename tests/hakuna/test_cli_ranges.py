"""Every numeric option of every subcommand has a range: a value outside it (or NaN, inf, a word) is an
argparse error (exit 2, one usage line), never a crash hours later."""

import argparse
import math

import pytest

from hakuna.cli import build_parser

EXEMPT: set[str] = set()  # every numeric option has a range (--val-seasons too: 1..999, then checked against the data)


def _options():
    parser = build_parser()
    todo = [((), parser)]
    while todo:
        path, p = todo.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [((*path, name), sub) for name, sub in action.choices.items()]
            elif action.option_strings and action.type in (int, float) and action.choices is None:
                yield path, action, None
            elif action.option_strings and hasattr(action.type, "bounds"):
                yield path, action, action.type.bounds


OPTIONS = list(_options())


def test_every_numeric_option_has_a_range():
    raw = [f"{' '.join(path)} {a.option_strings[-1]}" for path, a, bounds in OPTIONS
           if bounds is None and a.option_strings[-1] not in EXEMPT]  # fmt: skip
    assert raw == [], f"numeric options without a range: {raw}"
    assert len([o for o in OPTIONS if o[2] is not None]) >= 40


def _outside(bounds):
    lo, hi, low_open = bounds
    values = ["nan", "inf", "-inf", "x"]
    if lo is not None:
        values.append(repr(lo) if low_open else repr(lo - 1))
    if hi is not None:
        values.append(repr(hi * 2 + 1))
    return values


@pytest.mark.parametrize("path,action,bounds", [o for o in OPTIONS if o[2] is not None],
                         ids=[f"{' '.join(p)}{a.option_strings[-1]}" for p, a, b in OPTIONS if b is not None])
def test_out_of_range_values_are_argparse_errors(path, action, bounds):
    for value in _outside(bounds):
        with pytest.raises(argparse.ArgumentTypeError):
            action.type(value)
    lo, hi, low_open = bounds
    inside = hi if hi is not None else (lo + low_open if lo is not None else 0)
    parsed = action.type(str(inside))
    assert math.isfinite(parsed)


@pytest.mark.parametrize("argv", [["synth", "--out", "o", "--size", "0x0"], ["synth", "--out", "o", "--sequences", "0"],
                                  ["classify", "--model", "m", "--detections", "d.json", "--images", "i", "--out", "o",
                                   "--classifier-batch", "0"],
                                  ["crops", "--detections", "d", "--images", "i", "--out", "o", "--margin", "1000"],
                                  ["run-submission", "z.zip", "--data", "d", "--time-limit", "0"]])  # fmt: skip
def test_the_issue_cases_exit_2_with_a_usage_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "error: argument" in err and "Traceback" not in err, err

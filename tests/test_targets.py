import pytest

from object_displacement.errors import DisplacementError
from object_displacement.targets import make_target
from object_displacement.types import Target


def test_a_prompt_combines_with_one_place_and_a_point_beats_a_box():
    assert make_target(100, 80, prompt="cup", point=[1, 2], box=[0, 0, 5, 5]) == Target("cup", (1, 2))
    assert make_target(100, 80, prompt=" cup ", box=[0, 0, 5, 5]) == Target("cup", box=(0, 0, 5, 5))
    assert make_target(100, 80, point=[1, 2], box=[0, 0, 5, 5]) == Target(point=(1, 2))
    assert make_target(100, 80, prompt="cup") == Target(prompt="cup")
    assert make_target(100, 80, prompt="cup", box=[0, 0, 5, 5]).kind == "prompt+box"


def test_a_target_never_holds_both_a_point_and_a_box():
    with pytest.raises(ValueError):
        Target(point=(1, 2), box=(0, 0, 5, 5))


def test_box_partly_outside_is_clipped():
    assert make_target(100, 80, box=[-10, 5, 120, 70]).box == (0, 5, 100, 70)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no target"),
        ({"prompt": "  "}, "no target"),
        ({"box": [10, 10, 10, 20]}, "empty"),
        ({"box": [200, 200, 300, 300]}, "outside"),
        ({"box": [1, 2, 3]}, "4 numbers"),
        ({"point": [100, 5]}, "outside"),
        ({"point": ["a", 5]}, "2 numbers"),
    ],
)
def test_bad_targets_say_what_is_wrong(kwargs, message):
    with pytest.raises(DisplacementError, match=message):
        make_target(100, 80, **kwargs)


def test_clicks_in_sams_format_stand_alone_or_refine_a_box():
    alone = make_target(100, 80, points=[[10, 20], [30, 40]], labels=[1, 0])
    assert alone.positive == ((10, 20),) and alone.negative == ((30, 40),) and alone.kind == "points"
    boxed = make_target(100, 80, box=[0, 0, 50, 50], points=[[10, 20]], labels=[0])
    assert boxed.box == (0, 0, 50, 50) and boxed.negative == ((10, 20),) and boxed.kind == "box+points"
    assert make_target(100, 80, points=[[1, 2]]).labels == (1,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points": [[10, 20]], "labels": [1, 0]}, "one 1"),
        ({"points": [[10, 20]], "labels": [2]}, "one 1"),
        ({"points": [[500, 20]]}, "outside"),
        ({"labels": [1]}, "needs target.points"),
        ({"points": [[10, 20]], "labels": [0]}, "no target"),
    ],
)
def test_bad_clicks_say_what_is_wrong(kwargs, message):
    with pytest.raises(DisplacementError, match=message):
        make_target(100, 80, **kwargs)


def test_keep_out_boxes_are_checked_and_clipped():
    from object_displacement.targets import keep_out_boxes

    assert keep_out_boxes(None, 100, 80) == () and keep_out_boxes([], 100, 80) == ()
    assert keep_out_boxes([[-5, 0, 10, 90], [50, 50, 60, 60]], 100, 80) == ((0, 0, 10, 80), (50, 50, 60, 60))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("face", "keep_out needs a list of boxes"),
        ([[10, 10, 5, 20]], r"keep_out box \[10, 10, 5, 20\] is empty"),
        ([[200, 200, 300, 300]], "keep_out box .* is outside the 100x80 image"),
        ([[1, 2, 3]], "keep_out needs 4 numbers"),
        ([5, 6, 7, 8], "keep_out needs 4 numbers"),
    ],
)
def test_bad_keep_out_boxes_say_what_is_wrong(value, message):
    from object_displacement.targets import keep_out_boxes

    with pytest.raises(DisplacementError, match=message):
        keep_out_boxes(value, 100, 80)

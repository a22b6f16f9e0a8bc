import pytest

from object_displacement.errors import DisplacementError
from object_displacement.targets import make_target
from object_displacement.types import Target


def test_most_specific_cue_wins():
    assert make_target(100, 80, prompt="cup", point=[1, 2], box=[0, 0, 5, 5]) == Target(prompt="cup")
    assert make_target(100, 80, point=[1, 2], box=[0, 0, 5, 5]) == Target(point=(1, 2))
    assert make_target(100, 80, box=[0, 0, 5, 5]) == Target(box=(0, 0, 5, 5))


def test_box_partly_outside_is_clipped():
    assert make_target(100, 80, box=[-10, 5, 120, 70]).box == (0, 5, 100, 70)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no target"),
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

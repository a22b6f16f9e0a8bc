"""Issue 18: the stage cache's key covers every project module a component's code can reach."""

import inspect
from pathlib import Path

import pytest

import object_displacement
from object_displacement.cache import source_digest
from object_displacement.segmenters.grabcut import GrabCutSegmenter
from object_displacement.segmenters.salient import SalientSegmenter
from object_displacement.selectors.auto import AutoSelector
from object_displacement.selectors.box import BoxSelector
from object_displacement.selectors.point import PointSelector

PACKAGE = Path(object_displacement.__file__).resolve().parent


def edit(monkeypatch, relative: str) -> None:
    """Read the project file ``relative`` with a line added, as if it had just been edited."""
    edited = (PACKAGE / relative).resolve()
    assert edited.is_file()
    real = Path.read_bytes
    monkeypatch.setattr(
        Path, "read_bytes", lambda path: real(path) + (b"\n# edited\n" if path.resolve() == edited else b"")
    )


@pytest.mark.parametrize("helper", ["segmenters/background.py", "geometry.py"])
def test_a_grabcut_key_changes_when_a_module_it_imports_is_edited(monkeypatch, helper):
    # GrabCut's clean start lives in background.py and its boxes in geometry.py: editing
    # either changes its masks, and the cache must not serve the old ones
    segmenter = GrabCutSegmenter()
    before = source_digest(segmenter)
    edit(monkeypatch, helper)
    assert source_digest(segmenter) != before


def test_the_salient_segmenters_key_covers_its_nested_grabcut(monkeypatch, tmp_path):
    segmenter = SalientSegmenter(weights_dir=str(tmp_path), grabcut=GrabCutSegmenter())
    before = source_digest(segmenter)
    edit(monkeypatch, "segmenters/grabcut.py")
    assert source_digest(segmenter) != before


def test_a_key_covers_the_components_held_and_not_modules_none_reaches(monkeypatch):
    # the dispatching selector's module imports neither the point selector nor PatchMatch
    selector = AutoSelector(box=BoxSelector(), point=PointSelector())
    before = source_digest(selector)
    with monkeypatch.context() as patch:
        edit(patch, "selectors/point.py")
        assert source_digest(selector) != before
    edit(monkeypatch, "inpainters/patchmatch.py")
    assert source_digest(selector) == before


def test_imports_are_followed_relative_and_inside_functions_but_not_for_type_checkers(tmp_path, monkeypatch):
    source = tmp_path / "component.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import geometry\n"
        "if TYPE_CHECKING:\n"
        "    from object_displacement import api\n"
        "def work():\n"
        "    from object_displacement.quality import psnr\n"
    )
    component = type("Component", (), {"__module__": "object_displacement.segmenters.component"})()
    real = inspect.getsourcefile
    monkeypatch.setattr(inspect, "getsourcefile", lambda c: str(source) if c is type(component) else real(c))
    before = source_digest(component)
    for reached in ["geometry.py", "quality.py"]:
        with monkeypatch.context() as patch:
            edit(patch, reached)
            assert source_digest(component) != before, reached
    edit(monkeypatch, "api.py")
    assert source_digest(component) == before

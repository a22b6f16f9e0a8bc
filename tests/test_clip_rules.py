"""CLIP's decisions that must hold for every model family: the match threshold, the
timm-based towers, and the containment rule on SAM's nested whole/part/sub-part masks."""

import numpy as np
import pytest
from skimage import data

from object_displacement.errors import DisplacementError
from object_displacement.geometry import shift
from object_displacement.quality import evaluate
from object_displacement.selectors.clip import ClipSelector, contained_first
from object_displacement.selectors.clip_embedder import ClipEmbedder
from object_displacement.types import Candidate, Move, Plan, Result, Target
from tests.tiny_models import SIGLIP_CONFIG, save_clip

COFFEE = data.coffee()
GENERIC = ["thing", "background", "surface"]  # the selector's default generic words
WORDS = ["cup", "mug", "backpack", "table", "person", "dog", "coffee", "spoon", "plate", "chair"]


def square(x0: int, y0: int, x1: int, y1: int, shape=(400, 600)) -> Candidate:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return Candidate(mask=mask)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """The tiny CLIP in a folder of its own: its models load here, not in the shared cache
    entry of ``tiny_models`` (test_models counts those loads)."""
    return save_clip(tmp_path_factory.mktemp("clip") / "clip")


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory):
    """A SigLIP-shaped open_clip folder: timm vision tower (no ``conv1``), sigmoid logit bias."""
    return save_clip(tmp_path_factory.mktemp("siglip") / "siglip", SIGLIP_CONFIG)


@pytest.mark.models
def test_a_timm_based_model_loads_and_scores(tiny_siglip):
    selector = ClipSelector(model=f"local-dir:{tiny_siglip}", min_score=-1.0)
    ranked = selector.select(
        COFFEE, [square(10, 10, 200, 150), square(250, 50, 500, 390)], Target(prompt="cup")
    )
    assert len(ranked) == 2 and all(np.isfinite(c.score) for c in ranked)


@pytest.mark.parametrize("family", ["clip", "siglip"])
@pytest.mark.models
def test_the_match_threshold_is_relative_to_generic_words_in_every_family(tiny_clip, tiny_siglip, family):
    folder = tiny_clip if family == "clip" else tiny_siglip
    selector = ClipSelector(model=f"local-dir:{folder}")  # the defaults: no raw cosine threshold
    candidates = [square(10, 10, 200, 150), square(250, 100, 350, 200), square(400, 220, 590, 390)]
    generic = np.max([selector.embedder.similarities(COFFEE, candidates, w) for w in GENERIC], axis=0)
    accepted, rejected = [], []
    for word in WORDS:
        cosines = selector.embedder.similarities(COFFEE, candidates, word)
        # both random families sit far below the 0.2 that suits CLIP ViT-B-32, each in its own range
        assert cosines.max() < 0.2
        best = int(cosines.argmax())  # disjoint candidates: the containment rule stays out of it
        (accepted if cosines[best] - generic[best] >= 0.0 else rejected).append(word)
    assert accepted and rejected, "the words should fall on both sides of the threshold"
    for word in accepted:
        assert selector.select(COFFEE, candidates, Target(prompt=word))[0].score == pytest.approx(
            selector.embedder.similarities(COFFEE, candidates, word).max()
        )
    for word in rejected:
        with pytest.raises(
            DisplacementError, match=rf"no object matching '{word}' \(best: -[0-9.]+ < min_margin"
        ):
            selector.select(COFFEE, candidates, Target(prompt=word))
    # min_score overrides the relative rule with a raw cosine threshold
    low = ClipSelector(model=f"local-dir:{folder}", min_score=-1.0)
    assert low.select(COFFEE, candidates, Target(prompt=rejected[0]))


def nested() -> list[Candidate]:
    """SAM's three masks for one object: the whole, a part of it, a sub-part of the part."""
    return [square(100, 50, 500, 350), square(200, 100, 400, 300), square(250, 150, 350, 250)]


def test_a_whole_object_that_wins_keeps_its_rank_over_its_parts():
    scores = np.array([0.300, 0.290, 0.285])
    # without asking whether the whole's rest looks like the prompt, the sub-part won
    assert contained_first(nested(), scores, margin=0.02).argmax() == 2
    asked = []

    def rest_matches(pairs):  # the whole without its part (and the part without its sub-part) still match
        asked.append(sorted(pairs))
        return np.ones(len(pairs), dtype=bool)

    adjusted = contained_first(nested(), scores, margin=0.02, is_whole=rest_matches)
    np.testing.assert_array_equal(adjusted, scores)
    assert asked == [[(0, 1), (0, 2), (1, 2)]]  # one batched question for every contained pair


def test_a_container_still_loses_to_the_object_inside_it():
    table, cup, handle = nested()
    scores = np.array([0.31, 0.30, 0.295])
    # the table without the cup does not look like a cup; the table without the handle does
    # (the cup is still on it), and so does the cup without its handle
    containers = {(0, 1)}
    adjusted = contained_first(
        [table, cup, handle],
        scores,
        margin=0.02,
        is_whole=lambda pairs: np.array([p not in containers for p in pairs]),
    )
    assert adjusted.argmax() == 1 and adjusted[2] == scores[2]


def test_the_rule_compares_only_the_top_k_candidates():
    asked = []

    def rest_matches(pairs):
        asked.extend(pairs)
        return np.zeros(len(pairs), dtype=bool)

    scores = np.array([0.300, 0.290, 0.285])
    adjusted = contained_first(nested(), scores, margin=0.02, top_k=2, is_whole=rest_matches)
    assert asked == [(0, 1)]  # the sub-part, third, is left out: it cannot win once the part is in
    assert adjusted.argmax() == 1 and adjusted[2] == scores[2]


@pytest.mark.models
def test_clip_keeps_a_whole_object_whose_rest_looks_like_its_part(tiny_clip):
    # a photo that repeats every 64 rows: the whole's lower half is pixel for pixel its upper half
    image = np.tile(COFFEE[100:164, 200:328], (4, 3, 1))
    whole, part = square(64, 64, 192, 192, image.shape[:2]), square(64, 64, 192, 128, image.shape[:2])
    cosines = ClipEmbedder(model=f"local-dir:{tiny_clip}").similarities(image, [whole, part], "cup")
    assert cosines[0] > cosines[1], "setup: the whole should score higher than its part"
    forced = {"min_score": -1.0, "containment_margin": 2.0}  # any inner candidate is within the margin
    ranked = ClipSelector(model=f"local-dir:{tiny_clip}", **forced).select(
        image, [part, whole], Target(prompt="cup")
    )
    assert ranked[0].bbox == whole.bbox and ranked[0].score == pytest.approx(cosines[0])
    # part_margin -2: no rest is ever enough, every outer candidate is a container
    ranked = ClipSelector(model=f"local-dir:{tiny_clip}", part_margin=-2.0, **forced).select(
        image, [part, whole], Target(prompt="cup")
    )
    assert ranked[0].bbox == part.bbox


def moved_cup() -> Result:
    """The coffee photo with the cup's box moved 100 px right and its old place greyed."""
    old = square(170, 20, 440, 300).mask
    new = shift(old, 100, 0)
    output = COFFEE.copy()
    output[old] = 128
    output[new] = shift(COFFEE, 100, 0)[new]
    layer, alpha = shift(COFFEE, 100, 0), new.astype(np.float32)
    plan = Plan(COFFEE, old, COFFEE, layer, alpha, old & ~new, np.zeros_like(old), Move(100, 0))
    plan.composite, plan.inpaint_mask = output, old & ~new
    return Result(COFFEE, Target(prompt="cup"), [Candidate(old)], [Candidate(old)], plan=plan, output=output)


@pytest.mark.models
@pytest.mark.parametrize("crop", ["masked", "combined"])
def test_the_quality_scores_see_what_the_selector_saw(tiny_clip, crop):
    selector = ClipSelector(model=f"local-dir:{tiny_clip}", crop=crop, min_score=-1.0)
    result = moved_cup()
    quality = evaluate(result, scorer=selector.embedder)
    # the selector's own score for the object where it was is the quality's "before"
    (ranked,) = selector.select(result.image, [result.selected], Target(prompt="cup"))
    assert quality["clip_old_place_before"] == pytest.approx(ranked.score, abs=1e-4)
    # after the move: the old place (the ghost) and the new place (the object), same crops
    old, new = Candidate(result.mask), Candidate(result.plan.moved_mask)
    after = selector.embedder.similarities(result.output, [old, new], "cup")
    assert quality["clip_ghost"] == pytest.approx(after[0], abs=1e-4)
    assert quality["clip_presence"] == pytest.approx(after[1], abs=1e-4)
    # the selector's crop setting is its embedder's: one built alone with it scores the same
    alone = ClipEmbedder(model=f"local-dir:{tiny_clip}", crop=crop).similarities(
        result.output, [old, new], "cup"
    )
    np.testing.assert_allclose(after, alone, atol=1e-6)

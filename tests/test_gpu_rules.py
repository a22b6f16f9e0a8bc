"""The rules that decide how models use a GPU, as pure functions: the CPU-only CI checks
them here, since none of it can run on a GPU in CI (README: what was not run on a GPU)."""

from __future__ import annotations

import pytest

from object_displacement.runtime import auto_precision, models_to_park

GB = 2**30


def test_auto_precision_is_bf16_where_the_gpu_computes_in_it_else_fp16_and_fp32_on_a_cpu():
    assert auto_precision(cuda=True, bf16_supported=True) == "bf16-mixed"  # Ampere and later
    assert auto_precision(cuda=True, bf16_supported=False) == "16-mixed"  # Turing, Volta
    assert auto_precision(cuda=False, bf16_supported=False) == "32-true"
    assert auto_precision(cuda=False, bf16_supported=True) == "32-true"  # a CPU: fp32 still


def test_every_model_stays_on_a_card_that_holds_them_all():
    resident = {"sam": int(2.6 * GB), "clip": int(0.6 * GB)}
    assert models_to_park(80 * GB, resident, 11 * GB) == []


def test_on_a_12_gb_card_the_largest_models_leave_first_until_sdxl_fits():
    resident = {"sam3": int(3.4 * GB), "grounding_dino": int(0.7 * GB), "clip": int(0.6 * GB)}
    sdxl = 7 * GB + 4 * GB  # fp16 weights and the working memory of a 1024 px crop
    assert models_to_park(12 * GB, resident, sdxl) == ["sam3", "grounding_dino", "clip"]
    # with offload SDXL holds its largest sub-model (the UNet, 5 GB) at a time
    assert models_to_park(12 * GB, resident, 5 * GB + 4 * GB) == ["sam3"]


@pytest.mark.parametrize("reserve", [0.0, 0.1, 0.25])
def test_what_stays_fits_beside_the_running_model_with_the_reserve_kept_free(reserve):
    resident = {f"m{i}": (i + 1) * GB for i in range(5)}
    card, running = 24 * GB, 9 * GB
    parked = models_to_park(card, resident, running, reserve)
    kept = sum(size for name, size in resident.items() if name not in parked)
    assert kept + running <= card * (1 - reserve)
    assert parked == sorted(parked, key=lambda n: -resident[n])  # largest first
    if parked:  # and no more than needed: keeping the last one parked would not fit
        assert kept + resident[parked[-1]] + running > card * (1 - reserve)


def test_a_model_too_big_for_the_card_parks_everything_and_still_runs_alone():
    assert models_to_park(8 * GB, {"sam": 2 * GB}, 9 * GB) == ["sam"]

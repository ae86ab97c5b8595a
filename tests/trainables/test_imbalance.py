import numpy as np
import pytest
import torch

from trainables import BatchLoader, InputError, create_strategy, list_strategies

LABELS = np.array([0] * 75 + [1] * 25)


def test_the_study_strategies_are_registered():
    assert set(list_strategies()) >= {"none", "weighted_loss", "oversampling", "both"}


def test_weighted_loss_weighs_the_minority_up_by_the_class_ratio():
    setup = create_strategy("weighted_loss", LABELS)
    assert torch.allclose(setup.class_weights, torch.tensor([100 / 150, 100 / 50]))
    assert setup.sample_weights is None
    assert torch.equal(setup.criterion().weight, setup.class_weights)


def test_none_changes_nothing():
    setup = create_strategy("none", LABELS)
    assert setup.class_weights is None and setup.sample_weights is None and setup.criterion().weight is None


def _minority_share_drawn(setup):
    loader = BatchLoader(torch.zeros(100, 1, 4, 4, dtype=torch.uint8), torch.from_numpy(LABELS), batch_size=10,
                         sample_weights=setup.sample_weights, generator=torch.Generator().manual_seed(0))
    drawn = torch.cat([loader.order() for _ in range(200)])
    assert len(drawn) == 200 * 100
    return torch.from_numpy(LABELS)[drawn].float().mean().item()


def test_oversampling_draws_the_minority_as_often_as_the_majority():
    setup = create_strategy("oversampling", LABELS)
    assert setup.class_weights is None
    assert _minority_share_drawn(setup) == pytest.approx(0.5, abs=0.01)  # 25 % without the sampler


def test_both_balances_the_classes_once_half_by_drawing_half_by_weighing():
    setup = create_strategy("both", LABELS)
    share = _minority_share_drawn(setup)
    assert share == pytest.approx(5 / (5 + 75**0.5), abs=0.01)  # sqrt(25) : sqrt(75), about 0.37
    # The loss the minority carries, drawn share times class weight, equals the majority's: balanced once.
    weights = setup.class_weights
    assert share * weights[1].item() == pytest.approx((1 - share) * weights[0].item(), rel=0.03)
    assert (1 - share) * weights[0].item() + share * weights[1].item() == pytest.approx(1.0, rel=0.03)


def test_unknown_strategy_and_single_class_labels():
    with pytest.raises(InputError, match="unknown imbalance strategy 'weighted'.*did you mean weighted_loss"):
        create_strategy("weighted", LABELS)
    with pytest.raises(InputError, match="both classes"):
        create_strategy("none", np.zeros(10, dtype=int))

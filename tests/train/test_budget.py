import pytest

from cnnkit.train.budget import auto_epochs, auto_patience, plan_budget, steps_per_epoch


@pytest.mark.parametrize(
    ("n_train", "epochs"),
    [(50, 60), (200, 60), (600, 38), (4000, 15), (60000, 5), (10**7, 5)],
)
def test_the_default_length_grows_with_the_square_root_of_an_epochs_steps(n_train, epochs):
    assert auto_epochs(steps_per_epoch(n_train, 64)) == epochs


def test_a_small_set_gets_more_optimiser_steps_and_a_large_one_fewer_epochs():
    small, large = plan_budget(600, 64, None, None), plan_budget(48000, 64, None, None)
    assert small.epochs * small.steps_per_epoch >= 300  # not 12 epochs of 10 steps
    assert large.epochs < small.epochs
    assert large.epochs * large.steps_per_epoch > small.epochs * small.steps_per_epoch


def test_epochs_given_are_exact_and_switch_early_stopping_off():
    b = plan_budget(600, 64, 12, None)
    assert (b.epochs, b.patience) == (12, 0) and "--epochs" in b.why


def test_a_data_sized_run_stops_early_with_a_patience_of_a_fifth():
    b = plan_budget(600, 64, None, None)
    assert b.patience == auto_patience(b.epochs) == 8
    assert "early stopping after 8 epochs" in b.why
    assert auto_patience(10) == 5  # never less than 5


def test_the_users_patience_wins_and_no_validation_means_no_early_stopping():
    assert plan_budget(600, 64, None, 0).patience == 0
    assert plan_budget(600, 64, 30, 4).patience == 4
    assert plan_budget(600, 64, None, None, has_validation=False).patience == 0


def test_the_cap_on_steps_per_epoch_counts():
    assert steps_per_epoch(6400, 64, max_steps=5) == 5
    assert plan_budget(6400, 64, None, None, max_steps=4).epochs == 60


def test_a_data_sized_run_watches_only_the_second_half_and_says_from_when():
    b = plan_budget(600, 64, None, None)
    assert b.unwatched_share == 0.5
    assert f"watched from epoch {b.epochs // 2 + 1}" in b.why
    # the user's epochs or patience: Keras' EarlyStopping, every epoch watched
    assert plan_budget(600, 64, 30, 4).unwatched_share == 0.0
    assert plan_budget(600, 64, None, 6).unwatched_share == 0.0
    assert "watched" not in plan_budget(600, 64, None, 6).why

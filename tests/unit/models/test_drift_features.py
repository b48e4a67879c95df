"""The feature two-sample test on real encoded KDD connections: no more false alarms than its alpha
on windows of the same traffic, and the 10% file's normal traffic told from ``corrected``'s."""

from __future__ import annotations

import numpy as np
import pytest

from models.drift import FeatureDrift, feature_alpha
from models.features import RecordsRaw, protocol_encoder
from stream.datasets import find_kdd_file, read_kdd
from stream.datasets.schema import builtin_schema
from tests.support import require_data

pytestmark = pytest.mark.data  # every test here reads the data folder


@pytest.fixture(scope="module")
def encoded() -> tuple[np.ndarray, np.ndarray, list[str]]:
    data = require_data("kdd99").parent
    train, test = read_kdd(find_kdd_file(data, "train")), read_kdd(find_kdd_file(data, "test"))
    before = RecordsRaw.from_frame(train[train["label"] == "normal"], builtin_schema("kdd99"))
    after = RecordsRaw.from_frame(test[test["label"] == "normal"], builtin_schema("kdd99"))
    encoder = protocol_encoder(builtin_schema("kdd99")).fit(before)
    return encoder.transform(before), encoder.transform(after), list(encoder.feature_names_)


def test_windows_of_the_same_traffic_raise_at_most_alpha_false_alarms(encoded) -> None:  # noqa: ANN001
    before, _, names = encoded
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(before))
    test = FeatureDrift(before[rows[:2000]], alpha=0.1, names=names)
    pool = before[rows[2000:]]
    alarms = sum(test.test(pool[rng.choice(len(pool), 2000, replace=False)]).drift for _ in range(100))
    assert alarms <= 10 + 6  # Bonferroni: at most alpha per window (mean 10 here at the very most)


def test_corrected_normal_traffic_is_told_from_the_training_file(encoded) -> None:  # noqa: ANN001
    before, after, names = encoded
    rng = np.random.default_rng(1)
    alpha = feature_alpha(19_495_725, 2000, 10)
    test = FeatureDrift(before[rng.choice(len(before), 2000, replace=False)], alpha, names)
    result = test.test(after[rng.choice(len(after), 2000, replace=False)])
    assert result.drift and result.statistic > result.threshold
    assert len(result.features) >= 3

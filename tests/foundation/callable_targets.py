"""Targets for the callable-path checks."""

NOT_CALLABLE = 42


def scoring_with_one_parameter(prediction):
    return {"value": 0.0}


def scoring_ok(prediction, ground_truth):
    return {"value": 0.0}

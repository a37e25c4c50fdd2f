"""Stand-ins for node-default slots not yet wired into STARTER_CONTRACT, with the right signatures.

Generated workspaces in tests wire these only for slots whose node default is still None, so
the tests exercise the real defaults as soon as they land.
"""


def raw_input_provider(config, now):
    return {"subject": "BTC", "as_of": None, "records": []}


def prediction_scope_builder(config, raw_input):
    return {"scope_key": getattr(config, "scope_key", "")}


def ground_truth_resolver(input):
    return None


def model_score_aggregator(results):
    return {}


def emission_builder(ranking, crunch_pubkey, compute_provider, data_provider):
    return {}


def report_schema_provider(contract):
    return {}


def leaderboard_ranker(entries, aggregation):
    return entries


def inference_input_builder(raw_input):
    return raw_input


def inference_output_validator(output):
    return output


def predict_call_builder(scope, inference_input):
    return "predict", (), {}


def scoring_function(prediction, ground_truth):
    return {"value": 0.0}

from replay.engine import first_difference


def test_first_difference_names_the_path_and_both_values():
    stored = {"entries": [{"model_id": "a", "coverage": 1.0}, {"model_id": "b", "coverage": 0.5}], "meta": {"k": 1}}
    replayed = {"entries": [{"model_id": "a", "coverage": 1.0}, {"model_id": "b", "coverage": 0.25}], "meta": {"k": 1}}
    assert first_difference(stored, replayed) == {"path": "entries[1].coverage", "stored": 0.5, "replayed": 0.25}
    assert first_difference(stored, stored) is None


def test_first_difference_of_a_missing_key_or_a_longer_list():
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == {"path": "b", "stored": None, "replayed": 2}
    assert first_difference({"e": [1]}, {"e": [1, 2]}) == {"path": "e", "stored": [1], "replayed": [1, 2]}

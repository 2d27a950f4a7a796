"""`-o key=value` parsing: values are YAML, numbers in scientific notation are numbers."""
import pytest

from ppdet_gcnet.cli import ToolError, _parse_overrides


def test_scientific_notation_is_a_number():
    parsed = _parse_overrides(['LearningRate.base_lr=1e-3', 'epoch=5e1', 'x=[2E-4, 1.5e+2]',
                               'n=7', 'name=1e-3x', "quoted='1e-3'"])
    assert parsed == {'LearningRate': {'base_lr': 0.001}, 'epoch': 50.0, 'x': [0.0002, 150.0],
                      'n': 7, 'name': '1e-3x', 'quoted': '1e-3'}


def test_nested_keys_merge_and_bad_forms_fail():
    assert _parse_overrides(['a.b=1', 'a.c=true']) == {'a': {'b': 1, 'c': True}}
    with pytest.raises(ToolError, match="expected key=value"):
        _parse_overrides(['epoch'])
    with pytest.raises(ToolError, match="already given a plain value"):
        _parse_overrides(['a=1', 'a.b=2'])

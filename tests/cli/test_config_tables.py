"""Config tables read from the library, never copied: ``mt.training.STRATEGIES`` gives the config's
strategy names and arguments and the CLI's dispatch; ``mt.evaluation.postprocess`` gives the
defaults of ``evaluation.postprocess``."""

from __future__ import annotations

import inspect
import typing

import medtransfer as mt
from medtransfer.cli.config import STRATEGY_ARGS, RunConfig, TrainingConfig
from medtransfer.cli.runs import _strategy


def test_config_strategy_arguments_match_the_constructors_signatures():
    registry = mt.training.STRATEGIES
    assert set(STRATEGY_ARGS) == set(registry)
    for name, cls in registry.items():
        params = inspect.signature(cls).parameters
        assert STRATEGY_ARGS[name] == tuple(params), name
        for param in params.values():  # what ``strategy_args`` may hold: numbers, bools, None
            assert param.kind is param.POSITIONAL_OR_KEYWORD, (name, param)
            assert param.default is None or isinstance(param.default, (int, float, bool)), (
                name,
                param,
            )
    annotation = TrainingConfig.model_fields["strategy"].annotation
    literal = next(a for a in typing.get_args(annotation) if typing.get_origin(a) is typing.Literal)
    assert set(typing.get_args(literal)) == set(registry)


def test_cli_builds_every_registered_strategy_with_its_arguments():
    for name, cls in mt.training.STRATEGIES.items():
        args = {p: inspect.signature(cls).parameters[p].default for p in STRATEGY_ARGS[name]}
        cfg = RunConfig.model_validate(
            {
                "data": {"manifest": "m.csv", "task": "segmentation"},
                "training": {"strategy": [name], "strategy_args": args},
            }
        )
        (built,) = _strategy(cfg)
        assert type(built) is cls
    cfg = RunConfig.model_validate(
        {
            "data": {"manifest": "m.csv", "task": "segmentation"},
            "training": {"strategy": ["lora", "discriminative"], "strategy_args": {"rank": 8}},
        }
    )
    lora, disc = _strategy(cfg)
    assert isinstance(lora, mt.training.LoRA) and lora.rank == 8
    assert isinstance(disc, mt.training.Discriminative)


def test_config_postprocess_fields_take_the_defaults_of_evaluation_postprocess():
    from medtransfer.cli.config import PostprocessConfig

    params = inspect.signature(mt.evaluation.postprocess).parameters
    fields = PostprocessConfig.model_fields
    assert set(fields) <= set(params)
    for name, field in fields.items():
        assert field.default == params[name].default, name
    assert not PostprocessConfig().enabled()

"""The family registry: one entry per task, architecture and loss, consulted everywhere."""

from __future__ import annotations

import math
from dataclasses import fields, replace
from typing import get_args

import pytest
import torch

from causal.errors import ConfigError
from runs_generator import registry
from runs_generator._modelset import build_model_set
from runs_generator._toydata import toy_config, toy_data
from runs_generator._trainer import train_model_set
from runs_generator.engine import group_key, train_runs
from runs_generator.levers import LARGE_SPACE, SMALL_SPACE
from runs_generator.models import MLP, StackedArch
from runs_generator.registry import ARCHS, LOSSES, TASKS, ArchEntry, TaskFamily
from runs_generator.spec import Arch, Loss, Problem, RunMetrics, Task
from runs_generator.table import oriented_columns

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FLOATS = [f.name for f in fields(RunMetrics) if f.name not in ("n_params", "diverged", "diverged_step",
                                                               "wall_time_s", "extra")]


def test_entries_match_the_spec_literals_and_the_lever_choices() -> None:
    assert tuple(TASKS) == get_args(Task)
    assert tuple(ARCHS) == get_args(Arch)
    assert tuple(LOSSES) == get_args(Loss)
    for space in (SMALL_SPACE, LARGE_SPACE):  # each space names the entries it draws from
        assert space.lever("task").choices == ("teacher", "mnist1d")
        assert space.lever("arch").choices == ("mlp", "cnn")
        assert space.lever("loss").choices == ("cross_entropy", "mse", "l1")
    for family in TASKS.values():
        assert set(family.problems) <= set(get_args(Problem)) and family.problems
        assert set(family.archs) <= set(ARCHS) and family.matched_archs <= set(family.archs)
        assert callable(family.make_data)
    own_trainer = {a for f in TASKS.values() if f.trainer for a in f.archs}  # e.g. the generative family
    for entry in ARCHS.values():
        impl = entry.impl()
        assert impl.name == entry.name
        if entry.name in own_trainer:  # trained by its family's trainer, from its GenerativeArch definition
            from runs_generator.generative import GenerativeArch

            assert isinstance(impl, GenerativeArch)
        else:  # trained by the engine's stacked models
            assert isinstance(impl, StackedArch)
    for family in TASKS.values():  # a generative objective belongs to exactly one of the family's archs
        for arch in family.archs:
            for problem in family.problems:
                assert registry.allowed_losses(problem, arch), (family.name, arch, problem)
    for problem in get_args(Problem):
        assert registry.allowed_losses(problem), f"no loss trains {problem}"


def test_draws_resolve_through_the_registry() -> None:
    cfgs = SMALL_SPACE.draw_all(seed=3, runs=200)
    for c in cfgs:
        family = TASKS[c.task]
        assert c.problem in family.problems and c.arch in family.archs
        assert c.loss in registry.allowed_losses(c.problem)
    assert {(c.task, c.arch) for c in cfgs} == {("teacher", "mlp"), ("mnist1d", "mlp"), ("mnist1d", "cnn")}


def test_registering_a_family_leaves_the_spaces_draws_unchanged(monkeypatch) -> None:
    before = [SMALL_SPACE.draw_all(seed=5, runs=60), LARGE_SPACE.draw_all(seed=5, runs=60)]
    monkeypatch.setitem(ARCHS, "gnn", ArchEntry(name="gnn", impl_path=MLP))
    monkeypatch.setitem(TASKS, "graph", TaskFamily(name="graph", problems=("classification",), archs=("mlp", "gnn"),
                                                   matched_archs=frozenset({"gnn"}), data="runs_generator.tasks:x"))
    monkeypatch.setitem(LOSSES, "hinge", replace(LOSSES["mse"], name="hinge", code=3))
    assert [SMALL_SPACE.draw_all(seed=5, runs=60), LARGE_SPACE.draw_all(seed=5, runs=60)] == before


def test_a_space_must_name_registered_entries() -> None:
    from runs_generator.levers import _levers

    with pytest.raises(ConfigError, match=r"task choices \['teacher', 'cifar'\].*unknown: \['cifar'\]"):
        _levers((8,), (2,), (32,), (1.0,), (64,), (20,), tasks=("teacher", "cifar"))


@pytest.mark.parametrize("task,arch,expected", [("mnist1d", "cnn", 1), ("mnist1d", "mlp", 0), ("teacher", "mlp", 0)])
def test_inductive_bias_is_the_familys_match(task: str, arch: str, expected: int) -> None:
    cfg = toy_config(task=task, arch=arch)
    assert registry.inductive_bias(task, arch) == expected
    assert oriented_columns(cfg, n_params=100, n_outputs=3)["inductive_bias"] == expected


@pytest.mark.parametrize("loss,problem,dist,matched", [
    ("cross_entropy", "classification", "gaussian", True), ("mse", "classification", "gaussian", False),
    ("mse", "regression", "gaussian", True), ("mse", "regression", "laplace", False),
    ("l1", "regression", "laplace", True), ("l1", "regression", "gaussian", False),
])
def test_loss_matched_is_the_losss_entry(loss: str, problem: str, dist: str, matched: bool) -> None:
    assert LOSSES[loss].matched(problem, dist) is matched
    cfg = toy_config(loss=loss, problem=problem, noise_dist=dist)
    assert oriented_columns(cfg, n_params=100, n_outputs=3)["loss_matched"] == int(matched)


@pytest.mark.parametrize("lookup,name,kind,table", [(registry.task_family, "cifar", "task", TASKS),
                                                    (registry.arch_entry, "resnet", "arch", ARCHS),
                                                    (registry.loss_entry, "hinge", "loss", LOSSES)])
def test_unknown_names_are_refused_with_the_registered_ones(lookup, name: str, kind: str, table: dict) -> None:
    with pytest.raises(ConfigError, match=f"unknown {kind} '{name}'.*registered") as info:
        lookup(name)
    assert all(known in str(info.value) for known in table)


def test_a_loss_refuses_a_problem_it_cannot_train() -> None:
    with pytest.raises(ConfigError, match="regression loss"):
        LOSSES["l1"].check("classification")
    LOSSES["mse"].check("classification")  # the Brier score: allowed


@pytest.mark.parametrize("arch,norm,dropout", [("mlp", "batch", 0.0), ("mlp", "layer", 0.3), ("cnn", "batch", 0.1),
                                               ("cnn", "layer", 0.0), ("cnn", "none", 0.3)])
def test_autograd_training_equals_the_hand_written_backward(arch: str, norm: str, dropout: float) -> None:
    """A family without a hand-written backward trains by autograd through the same stacked forward."""
    task = "mnist1d" if arch == "cnn" else "teacher"
    cfgs = [toy_config(run_index=i, seed=40 + i, task=task, arch=arch, width=4, depth=3, normalization=norm,
                       residual=bool(i), dropout=dropout, optimizer=("momentum", "adam")[i], loss=("cross_entropy", "mse")[i],
                       lr=0.02, steps=10, n_train=48, batch_size=(16, None)[i], early_stopping=bool(i),
                       augmentation=True)
            for i in range(2)]
    data = [toy_data(c, groups=True) for c in cfgs]
    dev, dt = torch.device("cpu"), torch.float64
    fused = train_model_set(build_model_set(cfgs, data, dev, dt), fused=True)
    auto = train_model_set(build_model_set(cfgs, data, dev, dt), fused=False)
    for a, b in zip(fused, auto):
        assert a.diverged == b.diverged is False
        for name in FLOATS:
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            if x is not None:
                assert math.isclose(x, y, rel_tol=1e-8, abs_tol=1e-10), (name, x, y)


class _MLPAutograd(type(MLP)):
    """A new architecture defined outside the package (an MLP's ops), with no hand-written backward."""

    name = "mlp_autograd"


def test_a_new_architecture_is_an_addition(monkeypatch) -> None:
    """Registering an arch (and offering it on a task) is all it takes to train it, batched and naive."""
    monkeypatch.setitem(ARCHS, "mlp_autograd", ArchEntry(name="mlp_autograd", impl_path=_MLPAutograd(), fused=False))
    teacher = TASKS["teacher"]
    monkeypatch.setitem(TASKS, "teacher", replace(teacher, archs=(*teacher.archs, "mlp_autograd")))
    base = [toy_config(run_index=i, seed=70 + i, normalization=("batch", "layer")[i], residual=True, depth=3, steps=8,
                       optimizer=("sgd", "adam")[i], lr=0.03, dropout=0.1 * i) for i in range(2)]
    new = [replace(c, arch="mlp_autograd") for c in base]
    data = [toy_data(c) for c in base]
    assert group_key(new[0]) != group_key(base[0])  # trains as its own group
    ref = train_runs(base, data, dtype=torch.float64)
    for engine in ("batched", "naive"):
        got = train_runs(new, data, engine=engine, dtype=torch.float64)
        for a, b in zip(ref, got):
            assert a.n_params == b.n_params
            for name in FLOATS:
                x, y = getattr(a, name), getattr(b, name)
                assert (x is None) == (y is None) and (x is None or math.isclose(x, y, rel_tol=1e-7, abs_tol=1e-9)), \
                    (engine, name, x, y)

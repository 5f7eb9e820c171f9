"""Workflows: chains, groups and chords of catalog jobs, checked whole before anything is sent, each step
sent by the worker that ran the step before it.

The builders and ``@workflow`` are imported from here (``from jobs.workflows import chain, step``); they
load on first use, so that importing a model of this folder while Django loads its apps loads nothing else.
"""
import importlib

PUBLIC = {"step": "specs", "chain": "specs", "group": "specs", "chord": "specs", "compile_spec": "specs",
          "workflow": "declare"}
__all__ = list(PUBLIC)


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(f"{__name__}.{PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

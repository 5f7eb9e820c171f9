"""Workflows: chains, groups and chords of catalog jobs, as JSON or built in code, checked whole
before anything is sent.

A spec is a tree of nodes:

- a step, ``{"job": "<name>", "kwargs": {...}, "input": "<parameter>"}``: one catalog job; with
  ``input``, the named parameter receives what came before it (the previous step's result, or the
  list of a group's results, in order);
- ``{"chain": [node, ...]}``: each node after the one before;
- ``{"group": [node, ...]}``: the nodes side by side;
- ``{"chord": {"header": [node, ...], "body": node}}``: a group, then the body with its results.

``compile_spec`` turns it into the steps of a graph, each knowing its parents, after checking every
step's arguments against its job's declared types and every input against the declared return type
of the steps that feed it: a mismatch is an InvalidWorkflow at launch, naming the step, never an
error on a worker. ``@workflow`` (jobs/workflows/declare.py) declares one in code, under a stable name, as a
catalog job.
"""
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from ..catalog import JobTask, find_job
from ..exceptions import InvalidArguments, InvalidWorkflow, JobLaunchError

MAX_STEPS = 20_000
MAX_DEPTH = 32
MAX_ERRORS = 100


def step(job: str, /, input: str = "", **kwargs) -> dict[str, Any]:
    """A step of catalog job `job` with arguments `kwargs`; `input` names the parameter that receives
    what comes before it."""
    return {"job": job, "kwargs": kwargs, **({"input": input} if input else {})}


def chain(*nodes: dict) -> dict[str, Any]:
    """Nodes one after another."""
    return {"chain": list(nodes)}


def group(*nodes: dict) -> dict[str, Any]:
    """Nodes side by side."""
    return {"group": list(nodes)}


def chord(header: list[dict], body: dict) -> dict[str, Any]:
    """The header's nodes side by side, then the body with the list of their results."""
    return {"chord": {"header": list(header), "body": body}}


@dataclass
class PlannedStep:
    """A step as compile_spec plans it: its job, arguments, input and the positions of its parents."""

    position: int
    path: str
    task: JobTask
    kwargs: dict[str, Any]
    input: str
    gathers: bool
    parents: list[int] = field(default_factory=list)


def compile_spec(spec: Any, user=None) -> list[PlannedStep]:
    """The steps of `spec`, checked; InvalidWorkflow naming every step that is wrong. With `user`,
    each job must be theirs to launch (the catalog's rule for single jobs)."""
    planner = _Planner(user)
    planner.node(spec, "", parents=[], gathered=False, depth=0)
    if planner.errors:
        raise InvalidWorkflow(planner.errors)
    if not planner.steps:
        raise InvalidWorkflow([{"field": "", "message": "the workflow has no steps"}])
    return planner.steps


class _Planner:
    def __init__(self, user):
        self.user = user
        self.steps: list[PlannedStep] = []
        self.errors: list[dict[str, str]] = []

    def fail(self, path: str, message: str) -> tuple[None, bool]:
        """Record a problem at `path`; what follows the node is planned without its parents (None)."""
        self.problem(path.rstrip(".") or "workflow", message)
        return None, False

    def problem(self, field: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:  # a spec of thousands of wrong steps: the first are enough
            self.errors.append({"field": field, "message": message})

    def node(self, node: Any, path: str, *, parents: list[PlannedStep] | None, gathered: bool,
             depth: int) -> tuple[list[PlannedStep] | None, bool]:
        """Plan `node` after `parents` (None: after a node that was wrong); return its last steps and
        whether they are a group's, whose results come as a list."""
        if depth > MAX_DEPTH:
            return self.fail(path, f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict) or len(node.keys() & {"job", "chain", "group", "chord"}) != 1:
            return self.fail(path, 'each node is one of {"job": ...}, {"chain": [...]}, {"group": [...]} '
                                   'or {"chord": {"header": [...], "body": {...}}}')
        if "job" in node:
            return self.step(node, path, parents=parents, gathered=gathered)
        if "chord" in node:
            chord = node["chord"]
            if len(node) != 1 or not isinstance(chord, dict) or set(chord) != {"header", "body"}:
                return self.fail(f"{path}chord", 'a chord is {"header": [nodes], "body": node}, alone in its object')
            ends, gathered = self.members(chord["header"], f"{path}chord.header", parents=parents, gathered=gathered,
                                          depth=depth, side_by_side=True)
            return self.node(chord["body"], f"{path}chord.body.", parents=ends, gathered=gathered, depth=depth + 1)
        kind = next(iter(node))
        if len(node) != 1:
            return self.fail(path, f"unexpected keys beside {kind}: {', '.join(str(key) for key in node if key != kind)}")
        return self.members(node[kind], f"{path}{kind}", parents=parents, gathered=gathered, depth=depth,
                            side_by_side=kind == "group")

    def members(self, members: Any, path: str, *, parents, gathered: bool, depth: int, side_by_side: bool):
        """Plan a chain's nodes one after another, or a group's side by side."""
        if not isinstance(members, list) or not members:
            return self.fail(path, "a non-empty list of nodes is expected here")
        ends = []
        for index, member in enumerate(members):
            if side_by_side:
                member_ends, _ = self.node(member, f"{path}[{index}].", parents=parents, gathered=gathered,
                                           depth=depth + 1)
                ends = None if ends is None or member_ends is None else ends + member_ends
            else:
                parents, gathered = self.node(member, f"{path}[{index}].", parents=parents, gathered=gathered,
                                              depth=depth + 1)
        return (ends, True) if side_by_side else (parents, gathered)

    def step(self, node: dict, path: str, *, parents: list[PlannedStep] | None, gathered: bool):
        path = path.rstrip(".") or "job"
        if len(self.steps) == MAX_STEPS:
            return self.fail(path, f"a workflow has at most {MAX_STEPS:,} steps") if not self.errors else (None, False)
        extra = set(node) - {"job", "kwargs", "input"}
        if extra:
            return self.fail(path, f"unexpected keys: {', '.join(sorted(map(str, extra)))}; a step has job, kwargs "
                                   "and input")
        name, kwargs, input = node["job"], node.get("kwargs", {}), node.get("input", "")
        if not isinstance(name, str) or not isinstance(kwargs, dict) or not isinstance(input, str):
            return self.fail(path, "job is a name, kwargs an object, input a parameter's name")
        try:
            task = find_job(name, user=self.user)
        except JobLaunchError as exc:
            return self.fail(path, str(exc))
        label = f"{path} ({name})"
        planned = PlannedStep(position=len(self.steps), path=path, task=task, kwargs=kwargs, input=input,
                              gathers=bool(input) and gathered, parents=[parent.position for parent in parents or ()])
        problems = len(self.errors)
        if input and parents is not None:
            self.check_input(label, task, input, kwargs, parents, gathered)
        try:
            if len(self.errors) == problems:  # an input that is wrong says enough about the step
                planned.kwargs = task.json_arguments(kwargs=kwargs, unchecked=input)
        except InvalidArguments as exc:
            for error in exc.errors:
                self.problem(f"{label}.{error['field']}".rstrip("."), error["message"])
        if len(self.errors) > problems:
            return None, False
        self.steps.append(planned)
        return [planned], False

    def check_input(self, label: str, task: JobTask, input: str, kwargs: dict, parents: list[PlannedStep],
                    gathered: bool) -> None:
        hints = get_type_hints(task.run, include_extras=True)
        if input not in task.arguments_model.model_fields:
            self.problem(label, f"input {input!r} is not a parameter of {task.name} "
                                f"({task.usage})")
        elif input in kwargs:
            self.problem(label, f"{input} is the input: it comes from the previous step, "
                                "not from kwargs")
        elif not parents:
            self.problem(label, f"input {input!r}: no step comes before this one")
        else:
            wanted = hints[input]
            if gathered:
                if get_origin(_strip(wanted)) is not list:
                    self.problem(label, f"input {input!r} receives the list of a group's "
                                        f"results, but is declared {_name(wanted)}; declare it list[...]")
                    return
                wanted = (get_args(_strip(wanted)) or (Any,))[0]
            for parent in parents:
                given = _returns(parent.task)
                if given is None:
                    self.problem(label, f"{parent.path} ({parent.task.name}) declares no "
                                        "return type; annotate it to pass its result on")
                elif not fits(given, wanted):
                    self.problem(label, f"input {input!r} is declared {_name(wanted)}, "
                                        f"but {parent.path} ({parent.task.name}) returns {_name(given)}")


@functools.cache
def _returns(task: JobTask) -> Any:
    """The job's declared return type, or None."""
    return get_type_hints(task.run, include_extras=True).get("return")


def _strip(annotation: Any) -> Any:
    """The type under Annotated[...] (its constraints are checked when the value is known)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _name(annotation: Any) -> str:
    annotation = _strip(annotation)
    return getattr(annotation, "__name__", None) if get_origin(annotation) is None else str(annotation).replace(
        "typing.", "")


def fits(given: Any, wanted: Any) -> bool:
    """Whether every value of type `given` (a job's declared return) is a valid `wanted` (a parameter's)."""
    given, wanted = _strip(given), _strip(wanted)
    if wanted in (Any, object) or given == wanted:
        return True
    if get_origin(given) in (Union, types.UnionType):
        return all(fits(member, wanted) for member in get_args(given))
    if get_origin(wanted) in (Union, types.UnionType):
        return any(fits(given, member) for member in get_args(wanted))
    if get_origin(wanted) is typing.Literal or get_origin(given) is typing.Literal:
        return get_origin(given) is typing.Literal and set(get_args(given)) <= set(get_args(wanted) or ())
    given_origin, wanted_origin = get_origin(given) or given, get_origin(wanted) or wanted
    if not (isinstance(given_origin, type) and isinstance(wanted_origin, type)):
        return False
    if not (issubclass(given_origin, wanted_origin) or (given_origin is int and wanted_origin is float)):
        return False
    if not get_args(wanted):  # a bare list or dict takes any
        return True
    wanted_args = get_args(wanted)
    given_args = get_args(given) or (Any,) * len(wanted_args)  # a bare list given: its items are unknown
    return len(given_args) == len(wanted_args) and all(
        given_arg is not Any and fits(given_arg, wanted_arg)
        for given_arg, wanted_arg in zip(given_args, wanted_args, strict=True))


class WorkflowTask(JobTask):
    """A declared workflow, as the catalog holds it: running it launches its graph; `build` makes
    the graph's spec from the workflow's arguments."""

    build = None

"""Where each step of a workflow's graph (selectors.workflow_graph) is drawn: layers left to right,
steps top to bottom, an arrow from each parent to each child; the template draws it as SVG."""
from typing import Any

# A box holds two lines: the job's name (up to NAME_CHARS at 12 px) and its state.
NODE_WIDTH, NODE_HEIGHT, COLUMN, ROW, MARGIN = 210, 44, 250, 56, 8
NAME_CHARS = 30


def short_name(name: str) -> str:
    """A job's name as its box shows it: whole when it fits; otherwise its app's prefix goes first
    ("…sleep_then_add"), then its middle, so the end that tells jobs apart stays."""
    if len(name) <= NAME_CHARS:
        return name
    last = name.rsplit(".", 1)[-1]
    if len(last) + 1 <= NAME_CHARS:
        return "…" + last
    return last[:NAME_CHARS // 2 - 1] + "…" + last[-(NAME_CHARS // 2):]


def graph_draw(graph: dict[str, Any]) -> dict[str, Any]:
    """Boxes and arrows of `graph`, in pixels. A layer's steps past those drawn are one box, "+N more",
    and the arrows of the steps it stands for end on it."""
    boxes, anchor = [], {}
    for column, layer in enumerate(graph["layers"]):
        x = MARGIN + column * COLUMN
        for row, node in enumerate(layer["nodes"]):
            box = {**node, "x": x, "y": MARGIN + row * ROW, "more": None, "label": short_name(node["job"])}
            boxes.append(box)
            anchor[node["id"]] = box
        if layer["more"]:
            hidden = sum(layer["more"].values())
            box = {"x": x, "y": MARGIN + len(layer["nodes"]) * ROW, "more": hidden, "id": f"more-{column}",
                   "status": max(layer["more"], key=layer["more"].get), "parents": layer["more_parents"],
                   "counts": sorted(layer["more"].items())}
            boxes.append(box)
            anchor[box["id"]] = box
    arrows = []
    for box in boxes:
        for parent in box["parents"]:
            if parent in anchor:
                start = anchor[parent]
                arrows.append({"x1": start["x"] + NODE_WIDTH, "y1": start["y"] + NODE_HEIGHT / 2,
                               "x2": box["x"], "y2": box["y"] + NODE_HEIGHT / 2})
    rows = max((len(layer["nodes"]) + bool(layer["more"]) for layer in graph["layers"]), default=0)
    return {"boxes": boxes, "arrows": arrows, "width": 2 * MARGIN + max(len(graph["layers"]) - 1, 0) * COLUMN + NODE_WIDTH,
            "height": 2 * MARGIN + max(rows - 1, 0) * ROW + NODE_HEIGHT, "node_width": NODE_WIDTH,
            "node_height": NODE_HEIGHT}

"""Parameters that mean one thing to several nodes, declared once here.

``PARAMS``: one value for all of them. Each is declared by every node that needs it
(``ros2 param get /memory_node visit_absence`` works), but the parameter file holds it once, in
its ``/**/*:`` section, which applies to every node in every namespace; nodes that do not
declare it ignore it. Two nodes given different values would disagree about what they share (a
visit greeted once but stored twice), so change it there, not per node. The key is ``/**/*``
and not ``/**``: rcl merges ``-p`` rules and launch's parameter dicts into a ``/**`` section
wherever that stands in the file, and a ``/**/<node>:`` section after it would then override
them.

``TORCH_THREADS``: the same name and meaning in every node that runs torch, with a value per
node (each process has its own threads), so it stays in each node's section.
"""

from __future__ import annotations

from .spec import ParamSpec

VISIT_ABSENCE = ParamSpec(
    "visit_absence",
    60.0,
    "A person unseen for longer than this [s] has left: their visit ends at the last sighting "
    "and the next sighting starts a new visit; identity_node greets once per visit, "
    "memory_node stores the visits. Shared: set it in the parameter file's /**/*: section.",
    min=1.0,
    max=86400.0,
)

UNTRACKED_HANDOFF = ParamSpec(
    "untracked_handoff_s",
    1.0,
    "An untracked face's embedding (and, in identity_node, its vote) counts as the first "
    "one of the track that appears at the same place (IoU >= 0.5) within this time, "
    "instead of being repeated; 0 = off [s]. Shared by both sides of the hand-over: set it "
    "in the parameter file's /**/*: section.",
    min=0.0,
    max=10.0,
)

#: Every shared parameter, in the order of the parameter file's ``/**/*:`` section.
PARAMS: list[ParamSpec] = [VISIT_ABSENCE, UNTRACKED_HANDOFF]

TORCH_THREADS = ParamSpec(
    "torch_threads",
    0,
    "CPU threads torch uses in this process (torch.set_num_threads at start; embedding_node "
    "gives onnxruntime as many). 0 = automatic: 1 in a node (its heavy work is serial and the "
    "other nodes share the CPU: more threads spin against them), torch's default (one per "
    "core) in the CLI.",
    min=0,
    max=256,
    read_only=True,
)

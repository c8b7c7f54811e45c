"""Identity status values: the zero value (a default-constructed Identity) is UNDECIDED.

A message nobody filled in must never read as KNOWN (a visit, a greeting, a name drawn) nor
as UNKNOWN (a stranger remembered). memory_node's side is tested over DDS in
test_memory_node.py; this file checks the values and the overlay's reading.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from visio_memoria.msg import Identity, IdentityArray

from visio_memoria_ros.core.types import Status
from visio_memoria_ros.nodes.convert import identity_from_msg
from visio_memoria_ros.nodes.images import ImageConverter
from visio_memoria_ros.nodes.overlay_node import identities_from_msg
from visio_memoria_ros.overlay import OverlayOptions, draw_overlay, identity_label


def test_python_status_values_are_the_message_constants():
    constants = {name[len("STATUS_"):]: getattr(Identity, name) for name in dir(Identity)
                 if name.startswith("STATUS_")}
    assert constants == {s.name: s.value for s in Status}
    assert Status(0) is Status.UNDECIDED


def test_a_default_constructed_identity_is_undecided_not_known():
    msg = Identity()
    assert msg.status == Identity.STATUS_UNDECIDED == 0
    assert msg.status not in (Identity.STATUS_KNOWN, Identity.STATUS_UNKNOWN,
                              Identity.STATUS_UNCERTAIN)
    decision = identity_from_msg(msg, ImageConverter())
    assert decision.status is Status.UNDECIDED
    assert decision.status is not Status.KNOWN


def test_the_overlay_draws_an_undecided_identity_as_neither_known_nor_unknown():
    ident = Identity(track_id=3, person_id=4, name="Bob", unknown_cluster_id=7,
                     bbox=[20.0, 20.0, 60.0, 70.0])  # status left at its zero value
    decisions, problems = identities_from_msg(IdentityArray(identities=[ident]))
    assert not problems and [d.status for d in decisions] == [Status.UNDECIDED]
    assert identity_label(decisions[0]) == "? t3"  # no name, no "unknown #7"
    image = np.full((100, 100, 3), 40, np.uint8)
    out = draw_overlay(image, decisions)
    opts = OverlayOptions()
    edge = out[45, 20]
    np.testing.assert_array_equal(edge, np.array(opts.uncertain_color, np.uint8))
    assert not np.array_equal(edge, np.array(opts.known_color, np.uint8))
    assert not np.array_equal(edge, np.array(opts.unknown_color, np.uint8))

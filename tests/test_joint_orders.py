"""Joint orders (handlatent.joint_orders): names per order against hand-typed tables, converters
both ways (numpy and torch, exact round trips), the wrist <-> palm rule, and STB's units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from handlatent import joint_orders as jo
from handlatent.skeleton import BONES, KEYPOINT_NAMES

# Hand-typed from each dataset's documentation (not derived from the module's tables).
TYPED = {
    "handlatent": "palm thumb_tip thumb_dip thumb_pip thumb_mcp index_tip index_dip index_pip "
                  "index_mcp middle_tip middle_dip middle_pip middle_mcp ring_tip ring_dip "
                  "ring_pip ring_mcp little_tip little_dip little_pip little_mcp",
    "rhd": "wrist thumb_tip thumb_dip thumb_pip thumb_mcp index_tip index_dip index_pip "
           "index_mcp middle_tip middle_dip middle_pip middle_mcp ring_tip ring_dip ring_pip "
           "ring_mcp little_tip little_dip little_pip little_mcp",
    "stb": "palm little_mcp little_pip little_dip little_tip ring_mcp ring_pip ring_dip ring_tip "
           "middle_mcp middle_pip middle_dip middle_tip index_mcp index_pip index_dip index_tip "
           "thumb_mcp thumb_pip thumb_dip thumb_tip",
    # MediaPipe: WRIST, THUMB_CMC, THUMB_MCP, THUMB_IP, THUMB_TIP, INDEX_FINGER_MCP, ...
    "freihand": "wrist thumb_mcp thumb_pip thumb_dip thumb_tip index_mcp index_pip index_dip "
                "index_tip middle_mcp middle_pip middle_dip middle_tip ring_mcp ring_pip ring_dip "
                "ring_tip little_mcp little_pip little_dip little_tip",
}


def project_hand() -> np.ndarray:
    """A hand in the project's order whose coordinates say which joint they are: joint k at
    (k, 10k, 100k), the palm at the midpoint of a wrist at (-1, -1, -1) and the middle MCP."""
    xyz = np.stack([np.arange(21.0), 10 * np.arange(21.0), 100 * np.arange(21.0)], 1)
    xyz[0] = (np.array([-1.0, -1.0, -1.0]) + xyz[12]) / 2
    return xyz


@pytest.mark.parametrize("name", list(TYPED))
def test_each_order_against_its_hand_typed_table(name):
    order = jo.joint_order(name)
    assert order.names == tuple(TYPED[name].split())
    hand = project_hand()
    converted = jo.to_order(hand, name)
    for i, joint in enumerate(order.names):  # each slot holds the joint the table names
        expected = np.array([-1.0, -1.0, -1.0]) if joint == "wrist" else \
            hand[KEYPOINT_NAMES.index(joint)]
        np.testing.assert_allclose(converted[i], expected, atol=1e-12, err_msg=joint)
    np.testing.assert_allclose(jo.from_order(converted, name), hand, atol=1e-12)


def test_the_project_order_is_skeletons_and_the_aliases_share_freihands():
    assert jo.PROJECT.names is KEYPOINT_NAMES
    for alias in ("mano", "MediaPipe", "openpose"):
        assert jo.joint_order(alias) is jo.ORDERS["freihand"]
    with pytest.raises(ValueError, match="unknown joint order 'coco'.*freihand"):
        jo.joint_order("coco")
    with pytest.raises(ValueError, match=r"\(\.\.\., 21, D\)"):
        jo.to_order(np.zeros((20, 3)), "stb")


def test_old_index_maps_and_stb_units():
    np.testing.assert_array_equal(
        jo.STB_TO_RHD, [0, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    np.testing.assert_array_equal(jo.RHD_TO_MANO[jo.MANO_TO_RHD], np.arange(21))
    np.testing.assert_array_equal(jo.MANO_TO_RHD[jo.RHD_TO_MANO], np.arange(21))
    stb = np.random.default_rng(0).standard_normal((2, 21, 3)) * 100
    np.testing.assert_allclose(jo.from_stb(stb)[:, 1], stb[:, 20] / 1000)  # thumb tip
    np.testing.assert_allclose(jo.from_stb(torch.tensor(stb)).numpy(), jo.from_stb(stb))


@pytest.mark.parametrize("name", list(TYPED))
def test_bones_in_each_order_join_the_same_joints(name):
    names = jo.joint_order(name).names
    root = {"palm", "wrist"}
    got = {(names[p], names[c]) for p, c in jo.bones(name)}
    want = {(KEYPOINT_NAMES[p], KEYPOINT_NAMES[c]) for p, c in BONES}
    assert {(("root" if p in root else p), c) for p, c in got} == \
        {(("root" if p in root else p), c) for p, c in want}


finite = st.floats(-10, 10, allow_nan=False, width=64)


@settings(max_examples=30, deadline=None)
@given(points=arrays(np.float64, (3, 21, 3), elements=finite),
       source=st.sampled_from(jo.order_names()), target=st.sampled_from(jo.order_names()))
def test_converters_round_trip_between_any_two_orders(points, source, target):
    there = jo.convert(points, source, target)
    np.testing.assert_allclose(jo.convert(there, target, source), points, atol=1e-9)
    back = jo.convert(torch.from_numpy(points), source, target)
    assert isinstance(back, torch.Tensor)
    np.testing.assert_allclose(back.numpy(), there, atol=1e-12)

"""RIFE network architectures, written from the facts in docs/models.md.

One module per architecture family (ifnet_v4: 4.0 and 4.6; ifnet_paper: the
ECCV2022 model); every family shares the float32 backward warp in warp.py.
"""

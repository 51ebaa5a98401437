"""RIFE network architectures, written from the facts in docs/models.md and in the
version table (models/versions.py).

One module per architecture family: ifnet_v4 (every Practical-RIFE 4.x release,
4.0 to 4.26 with their .lite and .heavy variants, driven by the table), ifnet_hd3
(the ECCV2022-RIFE HD model 3.6), ifnet_paper (the ECCV2022 paper model) and null;
every family shares the float32 backward warp in warp.py.
"""

"""Pieces of bench/run_vs_peers.py, one concern per module.

scenarios: what every tool runs; host: the machine (mount namespace, cgroups, cleanup);
tools: how each peer is set up and run; stats: the figures; report: the tables and the docs.
"""

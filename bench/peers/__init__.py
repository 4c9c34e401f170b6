"""Pieces of bench/run_vs_peers.py and bench/invoke_latency.py, one concern per module.

scenarios: what every tool runs; host: the machine (mount namespace, cgroups, cleanup);
tools: how each peer is set up and run; measure: one timed run of a tool; stats: the figures;
report: the tables and the docs; daemon: a private `ember daemon` and its HTTP client;
invoke_variants / invoke_report: what invoke_latency.py compares, and its tables.
fork_*: bench/fork_boot.py's parts: fork_setup (its daemon and functions), fork_floor (the
unsandboxed fork server), fork_latency, fork_density, fork_peer_idle (idle crun containers),
fork_burst, fork_report.
restore_*: bench/restore_boot.py's parts: restore_peers (runsc restore, runc + CRIU, bare CRIU
of the same handler; answer_watch times their answers with inotify), restore_latency (the
ember boot modes, the targets), restore_report (tables, docs section, suite rows),
restore_plots.
"""

#!/usr/bin/env bash
# The demo `make demo` runs: checks the host, builds the default Python image (once), and shows
# what a sandbox is: isolated, limited, fast to start, and gone without a trace when it ends.
set -euo pipefail
ember=${1:-build/bin/ember}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Templates are built in the background after a deploy: wait (at most 30 s) until one is ready.
wait_for_template() {
  for _ in $(seq 150); do
    "$ember" template ls 2>/dev/null | awk -v f="$1" '$1 == f && $3 == "ready" {ok=1} END {exit !ok}' &&
      return 0
    sleep 0.2
  done
  echo "the template of $1 did not become ready" >&2
  return 1
}
show() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@" || printf '(exit status %d)\n' "$?"; }

step "Can ember run here? (ember doctor)"
"$ember" doctor

if ! "$ember" image inspect python3.11 >/dev/null 2>&1; then
  step "Building the default image: Debian bookworm + python3.11 as one EROFS file (once)"
  "$ember" image build python3.11
fi
show "$ember" image ls

step "A Python command in a sandbox"
show "$ember" run -- python3 -c 'import sys, platform; print("hello from", platform.node(), "python", sys.version.split()[0])'

step "Its own namespaces: pid 1, root inside (an unprivileged uid outside), its own hostname"
show "$ember" run -- python3 -c 'import os, socket; print("pid", os.getpid(), "uid", os.getuid(), "host", socket.gethostname()); print(open("/proc/self/uid_map").read().strip())'

step "No capabilities, no_new_privs, a seccomp filter"
show "$ember" run -- python3 -c 'print([l.strip() for l in open("/proc/self/status") if l.startswith(("CapEff", "NoNewPrivs", "Seccomp:"))])'
show "$ember" run -- python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); r = libc.mount(b"none", b"/mnt", b"tmpfs", 0, None); print("mount ->", r, os.strerror(ctypes.get_errno()))'

step "Writes land in a private in-memory layer that is gone when the sandbox ends"
show "$ember" run -- sh -c 'echo hi > /etc/note && cat /etc/note'
show "$ember" run -- sh -c 'cat /etc/note 2>&1 || true'

step "Limits: 32M of memory, so a 200 MB allocation is OOM-killed (exit 137 with a reason)"
show "$ember" run --memory 32M -- python3 -c 'x = bytearray(200 * 1024 * 1024); print(len(x))'

step "A timeout (exit 124)"
show "$ember" run --timeout 300ms -- sleep 10

step "Start timings (-v)"
for _ in 1 2 3; do "$ember" run -v -- /bin/true; done

step "Functions: the ember daemon deploys them once and invokes them many times"
daemon_log=$(mktemp /tmp/ember-demo-daemon.XXXXXX)
"$ember" daemon >"$daemon_log" 2>&1 &
daemon_pid=$!
stop_daemon() {
  if kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    wait "$daemon_pid" || true
  fi
  rm -f "$daemon_log"
}
trap stop_daemon EXIT
for _ in $(seq 100); do "$ember" ls >/dev/null 2>&1 && break; sleep 0.1; done
make -s -C examples/native-c >/dev/null
for example in hello-python json-transform native-c process-shell; do
  show "$ember" deploy "examples/$example"
done
show "$ember" ls

step "Invoking them (the first call reuses the instance deploy booted; -v shows the timings)"
show "$ember" invoke hello-python -d '{"name": "ember"}' -v
show "$ember" invoke json-transform -d '{"records": [{"group": "eu", "value": 12.5}, {"group": "eu", "value": 7.5}, {"group": "us", "value": 3}]}'
show "$ember" invoke native-c -d '{"name": "ember"}'
show "$ember" invoke process-shell -d '"the quick brown fox"'

step "A plain boot forced: a fresh sandbox, runtime init and import, then the handler"
show "$ember" invoke hello-python --boot plain -d '{"name": "cold"}' -v

step "Fork boot: each function got a template at deploy (initialized, frozen); new instances fork from it"
wait_for_template hello-python
show "$ember" template ls
show "$ember" invoke hello-python --boot fork -d '{"name": "forked"}' -v
show "$ember" invoke hello-python --boot fork -d '{"name": "forked again"}' -v

step "Errors name their cause, and the daemon keeps serving"
show "$ember" invoke json-transform -d '{}'
show "$ember" invoke no-such-function
show "$ember" ps
show "$ember" logs hello-python

step "Stopping the daemon (SIGTERM: in-flight invocations finish, every instance is torn down)"
stop_daemon
trap - EXIT

step "Between runs ember keeps idle images mounted (30s, EMBER_IMAGE_LINGER) and a pool of cgroups; remove both"
show "$ember" cleanup

printf '\nDone. Nothing is left behind: no mounts, cgroups or processes (see docs/architecture.md).\n'

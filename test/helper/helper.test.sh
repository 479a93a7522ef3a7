#!/usr/bin/env bash
# Exercises outrun-helper for real (needs root): builds it, starts `agent` sessions whose program
# bind-mounts / as the session root and runs `bind`, runs commands through `exec` over pipes and
# over a pty, kills agents, and checks that nothing is left behind.
#
# The test runs in its own private mount namespace with a tmpfs on /run, so that /run/outrun is
# the real path yet never collides with a live session on this machine, and every mount it makes
# vanishes with it. Processes it starts are killed by the EXIT trap.
#
# Usage: bash test/helper/helper.test.sh      (exit 0: all passed, 1: a failure, 77: not root)
set -u -o pipefail

if [[ "$(id -u)" != 0 ]]; then
  echo "helper.test.sh: needs root (unshare, mount, chroot); skipped" >&2
  exit 77
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${OUTRUN_HELPER_TEST_NS:-}" ]]; then
  export OUTRUN_HELPER_TEST_NS=1
  exec unshare --mount --propagation private -- bash "$REPO/test/helper/helper.test.sh" "$@"
fi

# ------------------------------------------------------------------ setup and cleanup

T="$(mktemp -d /tmp/outrun-helper-test.XXXXXX)"
AGENT_PIDS=()  # outer agent helpers started in the background
BG_PIDS=()     # other background processes
NS_INODES=()   # pid namespaces of the sessions started

# stop_all SIGNAL PID...: signal them, give them 5 s, then SIGKILL and reap.
stop_all() {
  local sig="$1" p i alive
  shift
  for p in "$@"; do kill "-$sig" "$p" 2>/dev/null; done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && [[ "$(ps -o stat= -p "$p")" != Z* ]] && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null; done
  for p in "$@"; do wait "$p" 2>/dev/null; done
}

cleanup() {
  # SIGTERM first: an agent helper forwards it to PID 1, which forwards it to the program; when
  # that ends, PID 1 kills the rest of the namespace and the helper removes the session dir.
  # That also ends the commands of any exec helper still running, so the clients finish too.
  stop_all TERM "${AGENT_PIDS[@]}"
  stop_all TERM "${BG_PIDS[@]}"
  # An outer helper killed with SIGKILL takes its PID 1 along (PDEATHSIG), and with it the whole
  # pid namespace; anything still in one of ours now is a bug, but it must not outlive the test.
  local ino pidfile
  for ino in "${NS_INODES[@]}"; do
    for pidfile in /proc/[0-9]*/ns/pid; do
      [[ "$(readlink "$pidfile" 2>/dev/null)" == "$ino" ]] && kill -KILL "$(cut -d/ -f3 <<<"$pidfile")" 2>/dev/null
    done
  done
  rm -rf "$T"
  # /run is a tmpfs of this private mount namespace: it disappears when this process exits.
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mount -t tmpfs -o mode=0755 outrun-helper-test /run || { echo "cannot mount a tmpfs on /run" >&2; exit 1; }

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $1"; [[ $# -gt 1 ]] && printf '    %s\n' "${@:2}"; }
# check NAME EXPECTED ACTUAL
check() {
  if [[ "$2" == "$3" ]]; then ok "$1"; else notok "$1" "expected: $(printf %q "$2")" "actual:   $(printf %q "$3")"; fi
}
# check_contains NAME NEEDLE HAYSTACK
check_contains() {
  if [[ "$3" == *"$2"* ]]; then ok "$1"; else notok "$1" "expected to contain: $(printf %q "$2")" "actual: $(printf %q "$3")"; fi
}

echo "# building"
H_BUILT="$(bash "$REPO/scripts/build-helper.sh")" || { echo "build failed" >&2; exit 1; }
H="$T/outrun-helper"
cp "$H_BUILT" "$H"   # our own copy: a concurrent build cannot swap it under the test
check "build prints the output path" "$REPO/dist/runtime-helper/outrun-helper" "$H_BUILT"
check "--version" "outrun-helper 1" "$("$H" --version)"
"$H" frobnicate 2>"$T/err"
check "unknown subcommand exits 2" 2 $?
check_contains "unknown subcommand prints usage" "outrun-helper: usage:" "$(cat "$T/err")"

# ------------------------------------------------------------------ the exec client

# client.py MODE HELPER SESSION JSON RESULT: runs `HELPER exec SESSION` over pipes (MODE pipe) or
# on a pty (MODE pty), waits for the exact READY line, sends the spec, relays the command's output
# to stdout and writes "exit N" / "signal N" / "noready ..." / "timeout" to RESULT.
# client.py mkspec JSON: prints the length-prefixed spec.
cat >"$T/client.py" <<'PY'
import json, os, pty, resource, select, signal, struct, subprocess, sys, time

READY = b"OUTRUN1 READY\n"

def spec_bytes(j):
    if "raw_hex" in j:
        return bytes.fromhex(j["raw_hex"])
    f = [b"OUTRUN-SPEC-2", str(j.get("uid", 0)).encode(), str(j.get("gid", 0)).encode(),
         j.get("umask", "022").encode(), j.get("cwd", "/").encode()]
    v = j.get("view", [])
    f += [b"host" if j.get("host") else b"chroot", str(len(v)).encode()] + [x.encode() for x in v]
    g = j.get("groups", [])
    f += [str(len(g)).encode()] + [str(x).encode() for x in g]
    r = j.get("rlimits", [])
    f += [str(len(r)).encode()] + [x.encode() for x in r]
    a = j["argv"]
    f += [str(len(a)).encode()] + [x.encode() for x in a]
    e = j.get("env", ["PATH=/usr/bin:/bin"])
    f += [str(len(e)).encode()] + [x.encode() for x in e]
    if "big_env" in j:  # NAME=<every byte 1..255, repeated to N bytes>: tty-hostile bytes
        f[-1 - len(e)] = str(len(e) + 1).encode()
        f.append(b"BIG=" + (bytes(range(1, 256)) * (j["big_env"] // 255 + 1))[:j["big_env"]])
    body = b"\0".join(f) + b"\0"
    return struct.pack(">I", len(body)) + body

def main():
    mode = sys.argv[1]
    if mode == "mkspec":
        sys.stdout.buffer.write(spec_bytes(json.loads(sys.argv[2])))
        return
    helper, session, j, result = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
    for res, soft, hard in j.get("helper_rlimits", []):  # limits the helper itself starts with
        resource.setrlimit(res, (soft, hard))
    deadline = time.time() + j.get("timeout", 20)
    if mode == "pipe":
        p = subprocess.Popen([helper, "exec", session], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        pid, rfd, wfd = p.pid, p.stdout.fileno(), p.stdin.fileno()
    else:
        pid, rfd = pty.fork()
        if pid == 0:
            os.execv(helper, [helper, "exec", session])
        wfd = rfd

    def read_some():
        left = deadline - time.time()
        if left <= 0:
            return None
        r, _, _ = select.select([rfd], [], [], min(left, 0.2))
        if not r:
            return b"" if time.time() < deadline else None
        try:
            d = os.read(rfd, 65536)
        except OSError:  # EIO: the pty's slave side is closed
            d = b""
        return d if d else False

    def finish(text):
        with open(result, "w") as f:
            f.write(text + "\n")

    head = b""
    while len(head) < len(READY):
        d = read_some()
        if d is None or d is False:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            sys.stdout.buffer.write(head)
            return finish("timeout" if d is None else "noready")
        head += d
    if head[:len(READY)] != READY:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.stdout.buffer.write(head)
        return finish("badready")
    out = head[len(READY):]
    os.write(wfd, spec_bytes(j) + j.get("extra", "").encode())
    if mode == "pipe" and not j.get("keep_stdin"):
        p.stdin.close()
    actions = list(j.get("after", []))  # [[text, {"signal": N} | {"send": "..."} | {"run": [argv]}], ...]
    while True:
        while actions and actions[0][0].encode() in out:
            act = actions.pop(0)[1]
            if "signal" in act:
                os.kill(pid, act["signal"])
            if "send" in act:
                os.write(wfd, act["send"].encode())
            if "run" in act:  # retried: just after the start the helper may not have recorded the command
                for _ in range(50):
                    if subprocess.run(act["run"]).returncode == 0:
                        break
                    time.sleep(0.1)
        d = read_some()
        if d is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            sys.stdout.buffer.write(out)
            return finish("timeout")
        if d is False:
            break
        out += d
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    _, st = os.waitpid(pid, 0)
    finish("exit %d" % os.WEXITSTATUS(st) if os.WIFEXITED(st) else "signal %d" % os.WTERMSIG(st))

main()
PY

# run_exec MODE SESSION JSON: sets OUT (command output), ERR (helper stderr), RES (result line).
run_exec() {
  timeout 40 python3 "$T/client.py" "$1" "$H" "$2" "$3" "$T/res" >"$T/out" 2>"$T/err"
  OUT="$(tr -d '\r' <"$T/out")"
  ERR="$(cat "$T/err")"
  RES="$(cat "$T/res" 2>/dev/null || echo "client failed")"
}

# ------------------------------------------------------------------ sessions

cat >"$T/agent-program.sh" <<'SH'
#!/bin/sh
# The agent stand-in: builds the session root as the real agent would with FUSE, then waits.
set -e
mkdir "$S/root"
mount --bind / "$S/root"
"$H" bind "$S/root"
mount -t tmpfs -o mode=1777 outrun-test-tmp "$S/root/tmp"
echo marker-in-chroot >"$S/root/tmp/marker"
mkdir -m 0700 "$S/root/tmp/private"
sleep 1000 &   # a straggler for PID 1 to kill when the agent ends
touch "$S/ready"
exec sleep 1000
SH
chmod 0755 "$T/agent-program.sh"

# start_agent NAME: starts a session; sets S, AGENT (outer helper pid), INIT (host pid of PID 1).
start_agent() {
  S="/run/outrun/$1"
  S="$S" H="$H" "$H" agent "$S" -- "$T/agent-program.sh" </dev/null >"$T/agent-$1.out" 2>"$T/agent-$1.err" &
  AGENT=$!
  AGENT_PIDS+=("$AGENT")
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -e "$S/ready" ]] && break
    kill -0 "$AGENT" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! -e "$S/ready" ]]; then
    notok "agent $1 starts" "$(cat "$T/agent-$1.err")"
    return 1
  fi
  INIT="$(cat "$S/init.pid")"
  NS_INODES+=("$(readlink "/proc/$INIT/ns/pid")")
  ok "agent $1 starts"
}

# procs_in_ns INODE: pids of processes in that pid namespace.
procs_in_ns() {
  local f
  for f in /proc/[0-9]*/ns/pid; do
    [[ "$(readlink "$f" 2>/dev/null)" == "$1" ]] && cut -d/ -f3 <<<"$f"
  done
}

echo "# agent: session directory checks"
"$H" agent /tmp/not-a-session -- true 2>"$T/err"
check "agent refuses a session dir outside /run/outrun (exit 2)" 2 $?
"$H" agent /run/outrun/../etc -- true 2>"$T/err"
check "agent refuses a session name with .. (exit 2)" 2 $?

ln -s /tmp /run/outrun
"$H" agent /run/outrun/s-x -- true 2>"$T/err"
check "agent refuses a symlinked /run/outrun (exit 254)" 254 $?
check "... message" "outrun-helper: refusing to use /run/outrun: it is not a directory" "$(cat "$T/err")"
rm /run/outrun
mkdir -m 0755 /run/outrun
"$H" agent /run/outrun/s-x -- true 2>"$T/err"
check "agent refuses /run/outrun with mode 0755" "outrun-helper: refusing to use /run/outrun: it does not have mode 0700" "$(cat "$T/err")"
chmod 0700 /run/outrun
chown 65534 /run/outrun
"$H" agent /run/outrun/s-x -- true 2>"$T/err"
check "agent refuses /run/outrun not owned by root" "outrun-helper: refusing to use /run/outrun: it is not owned by root" "$(cat "$T/err")"
rmdir /run/outrun

(umask 0777; "$H" agent /run/outrun/s-true -- true 2>"$T/err")
check "agent with PROGRAM true exits 0" 0 $?
check "... and creates /run/outrun 0700 root" "700 0 directory" "$(stat -c '%a %u %F' /run/outrun)"
check "... and removes its session dir" "" "$(ls -A /run/outrun)"
"$H" agent /run/outrun/s-false -- sh -c 'exit 42'
check "agent exits with the program's code" 42 $?
"$H" agent /run/outrun/s-sig -- sh -c 'kill -USR1 $$'
check "agent exits 128+N when the program dies of signal N" $((128 + 10)) $?
"$H" agent /run/outrun/s-noprog -- /nonexistent/program 2>"$T/err"
check "agent with a missing program exits 127" 127 $?
check "... message" "outrun-helper: cannot run /nonexistent/program: No such file or directory" "$(cat "$T/err")"
"$H" agent /run/outrun/s-pid1 -- sh -c 'echo $$' >"$T/out" 2>&1
check "agent's program is pid 2 of a new pid namespace" "2" "$(cat "$T/out")"
"$H" agent /run/outrun/s-io -- sh -c 'cat; echo to-stderr >&2' <<<"stdin-passes" >"$T/out" 2>"$T/err"
check "agent passes stdin/stdout through untouched" "stdin-passes" "$(cat "$T/out")"
check "agent passes stderr through untouched" "to-stderr" "$(cat "$T/err")"
start_ns="$(date +%s%N)"
"$H" agent /run/outrun/s-eof -- sh -c 'echo hi; exec >&-; sleep 2' | { cat >/dev/null; date +%s%N >"$T/eof"; }
end_ns="$(date +%s%N)"
check "the agent's stdout ends when the program closes it, not when the session ends" "early" \
  "$( (( $(cat "$T/eof") - start_ns < 1500000000 && end_ns - start_ns >= 2000000000 )) && echo early || echo "late: eof after $(( ($(cat "$T/eof") - start_ns) / 1000000 )) ms")"
"$H" agent /run/outrun/s-mnt -- sh -c 'mount -t tmpfs leak-check /mnt && grep -c leak-check /proc/self/mountinfo'  >"$T/out"
check "agent's mounts happen in its own namespace" "1" "$(cat "$T/out")"
check "... and do not leak out" "0" "$(grep -c leak-check /proc/self/mountinfo)"

echo "# agent: stale sessions"
deadpid="$(sh -c 'echo $$')"
mkdir -m 0700 /run/outrun/s-stale /run/outrun/s-stale/sub /run/outrun/s-live /run/outrun/s-nopid /run/outrun/s-elsewhere /run/outrun/s-here
echo "$deadpid" >/run/outrun/s-stale/helper.pid
echo "$deadpid" >/run/outrun/s-elsewhere/helper.pid
echo "not-$(uname -n)" >/run/outrun/s-elsewhere/helper.host
echo "$deadpid" >/run/outrun/s-here/helper.pid
uname -n >/run/outrun/s-here/helper.host
echo data >/run/outrun/s-stale/sub/file
mkdir "$T/canary"
echo alive >"$T/canary/file"
ln -s "$T/canary" /run/outrun/s-stale/sub/link-to-canary
ln -s "$T/canary/file" /run/outrun/s-stale/file-link
echo $$ >/run/outrun/s-live/helper.pid
if kill -0 "$deadpid" 2>/dev/null; then notok "dead pid $deadpid is dead"; fi

start_agent s-main || exit 1
check "a stale session (dead helper.pid) is removed at agent start" "no" "$([[ -e /run/outrun/s-stale ]] && echo yes || echo no)"
check "... without following its symlinks" "alive" "$(cat "$T/canary/file" 2>&1)"
check "a live session is kept" "yes" "$([[ -e /run/outrun/s-live/helper.pid ]] && echo yes || echo no)"
check "a session without helper.pid is kept" "yes" "$([[ -d /run/outrun/s-nopid ]] && echo yes || echo no)"
check "another machine's session (helper.host, a shared home) is kept" "yes" "$([[ -d /run/outrun/s-elsewhere ]] && echo yes || echo no)"
check "a stale session of this machine (helper.host) is removed" "no" "$([[ -e /run/outrun/s-here ]] && echo yes || echo no)"
check "helper.host names this machine" "$(uname -n)" "$(cat "$S/helper.host")"
rm -rf /run/outrun/s-live /run/outrun/s-nopid /run/outrun/s-elsewhere
check "session dir is root 0700" "700 0" "$(stat -c '%a %u' "$S")"
check "helper.pid is the outer helper's pid" "$AGENT" "$(cat "$S/helper.pid")"
check "init.pid is PID 1 of a pid namespace" "1" "$(awk '/^NSpid:/ {print $NF}' "/proc/$INIT/status")"
check "no temporary pid files remain" "" "$(cd "$S" && ls -A | grep tmp)"
"$H" agent "$S" -- true 2>"$T/err"
check "agent refuses an existing session dir" "outrun-helper: session directory $S already exists" "$(cat "$T/err")"

echo "# exec over pipes"
run_exec pipe "$S" '{"uid":65534,"gid":65534,"groups":[65534,100,4242],"umask":"027","cwd":"/tmp",
  "rlimits":["7:100:200","4:0:inf"],
  "argv":["sh","-c","id -u; id -G; umask; pwd; echo \"$FOO\"; cat marker; ulimit -n; ulimit -Hn; ulimit -c; ulimit -Hc; tr \"\\0\" \" \" </proc/1/cmdline; echo; touch newfile; stat -c %a newfile; exit 7"],
  "env":["FOO=bar baz","PATH=/usr/bin:/bin"]}'
check "exec: exit code 7" "exit 7" "$RES"
check "exec: uid, groups, umask, cwd, env, chroot+mount ns, rlimits, pid ns" \
  "65534
65534 100 4242
0027
/tmp
bar baz
marker-in-chroot
100
200
0
unlimited
$H agent $S -- $T/agent-program.sh 
640" "$OUT"
check "exec: nothing on stderr" "" "$ERR"

run_exec pipe "$S" '{"argv":["cat"],"extra":"bytes-after-the-spec\n"}'
check "exec reads no byte past the spec (they reach the command)" "bytes-after-the-spec" "$OUT"
check "... exit 0" "exit 0" "$RES"

run_exec pipe "$S" '{"argv":["sh","-c","env | sort"],"env":["A=1","B=two=2"]}'
check "exec: the environment is exactly the spec's" "A=1
B=two=2
PWD=/" "$OUT"

run_exec pipe "$S" '{"uid":65534,"gid":65534,"argv":["no-such-command-xyz"]}'
check "exec: missing command exits 127" "exit 127" "$RES"
check "... message" "outrun: no-such-command-xyz: command not found" "$ERR"
run_exec pipe "$S" '{"argv":["sh","-c","true"],"env":["PATH=/nonexistent"]}'
check "exec: PATH search uses the command's PATH" "exit 127" "$RES"
run_exec pipe "$S" '{"argv":["/etc/passwd"]}'
check "exec: not executable exits 126" "exit 126" "$RES"
check "... message" "outrun: /etc/passwd: Permission denied" "$ERR"
run_exec pipe "$S" '{"argv":["/tmp"]}'
check "exec: a directory exits 126" "exit 126" "$RES"
run_exec pipe "$S" '{"argv":["./nope"],"cwd":"/tmp"}'
check "exec: missing path exits 127 with strerror" "exit 127|outrun: ./nope: No such file or directory" "$RES|$ERR"
run_exec pipe "$S" '{"cwd":"/nonexistent-dir","argv":["true"]}'
check "exec: bad cwd exits 254" "exit 254" "$RES"
check "... message" "outrun: cannot enter the working directory /nonexistent-dir on the remote: No such file or directory" "$ERR"
run_exec pipe "$S" '{"uid":65534,"gid":65534,"cwd":"/tmp/private","argv":["true"]}'
check "exec: cwd is entered as the user" "exit 254|outrun: cannot enter the working directory /tmp/private on the remote: Permission denied" "$RES|$ERR"
run_exec pipe "$S" '{"uid":65534,"gid":65534,"rlimits":["7:10:10"],"argv":["sh","-c","ulimit -Hn 20"]}'
check "exec: the command cannot raise a hard limit the spec set" "exit 2" "$RES"
run_exec pipe "$S" '{"uid":65534,"gid":65534,"helper_rlimits":[[4,0,0]],"rlimits":["4:0:inf"],"argv":["sh","-c","ulimit -Hc"]}'
if (( (0x$(awk '/^CapEff:/ {print $2}' /proc/self/status) >> 24) & 1 )); then
  check "exec: limits are set before dropping privileges (a raised hard limit works)" "exit 0|unlimited" "$RES|$OUT"
else # root without CAP_SYS_RESOURCE (some containers): the remote's hard limit caps the local one
  check "exec: a hard limit that cannot be raised (no CAP_SYS_RESOURCE) is capped at the remote's" \
    "exit 0|0" "$RES|$OUT"
fi

run_exec pipe "$S" '{"argv":["sh","-c","trap \"echo got-TERM; exit 3\" TERM; echo started; while :; do sleep 0.1; done"],
  "after":[["started",{"signal":15}]]}'
check "exec forwards SIGTERM to the command" "exit 3|started
got-TERM" "$RES|$OUT"
run_exec pipe "$S" '{"argv":["sh","-c","echo started; exec sleep 30"],"after":[["started",{"signal":10}]]}'
check "exec dies of the signal that killed the command" "signal 10" "$RES"
run_exec pipe "$S" '{"argv":["sh","-c","kill -9 $$"]}'
check "exec: command killed by SIGKILL -> helper killed by SIGKILL" "signal 9" "$RES"

python3 "$T/client.py" mkspec '{"argv":["sh","-c","kill -9 $$"]}' >"$T/spec"
"$H" exec "$S" <"$T/spec" >"$T/out" 2>"$T/err"
check "exec: kill -9 gives 137 as seen by the shell" 137 $?
check "... stdout is exactly the 14-byte READY line" "4f555452554e312052454144590a" "$(od -An -tx1 "$T/out" | tr -d ' \n')"
# The helper re-raises the signal on itself: it must not dump core doing so. Its cwd after setns
# is the namespace's /, the host's /: look there.
cores_before="$(ls / | grep -ci core)"
python3 "$T/client.py" mkspec '{"argv":["sh","-c","kill -QUIT $$"],"rlimits":["4:0:0"]}' >"$T/spec"
(ulimit -c unlimited; "$H" exec "$S" <"$T/spec" >/dev/null 2>&1)
check "exec: SIGQUIT -> 131 and no core file" "131|$cores_before" "$?|$(ls / | grep -ci core)"

echo "# exec: malformed specs and dead sessions"
bad_spec() { # NAME HEX EXPECTED-MESSAGE-PART
  python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$2" >"$T/spec"
  "$H" exec "$S" <"$T/spec" >"$T/out" 2>"$T/err"
  local rc=$?
  check "malformed spec ($1) exits 254" 254 "$rc"
  check_contains "... message" "$3" "$(cat "$T/err")"
}
hexspec() { python3 "$T/client.py" mkspec "$1" | od -An -tx1 | tr -d ' \n'; }
good="$(hexspec '{"argv":["true"]}')"
bad_spec "zero length" "00000000" "length 0 is out of range"
bad_spec "huge length" "04000001" "out of range"
bad_spec "truncated" "00000010414243" "unexpected end of input"
bad_spec "bad magic" "$(python3 -c 'import struct;b=b"OUTRUN-SPEC-1\0";print((struct.pack(">I",len(b))+b).hex())')" "does not start with OUTRUN-SPEC-2"
bad_spec "argc 0" "$(hexspec '{"argv":[]}')" "no command"
bad_spec "bad uid" "$(hexspec '{"uid":"-1","argv":["true"]}')" "bad uid"
bad_spec "uid too big" "$(hexspec '{"uid":4294967295,"argv":["true"]}')" "bad uid"
bad_spec "bad umask" "$(hexspec '{"umask":"0800","argv":["true"]}')" "bad umask"
bad_spec "relative cwd" "$(hexspec '{"cwd":"tmp","argv":["true"]}')" "not an absolute path"
bad_spec "bad rlimit" "$(hexspec '{"rlimits":["7:10"],"argv":["true"]}')" "RESOURCE:SOFT:HARD"
bad_spec "unknown rlimit" "$(hexspec '{"rlimits":["99:1:1"],"argv":["true"]}')" "bad rlimit resource"
bad_spec "soft above hard" "$(hexspec '{"rlimits":["7:inf:10"],"argv":["true"]}')" "soft limit above"
bad_spec "env without =" "$(hexspec '{"env":["FOO"],"argv":["true"]}')" "not NAME=VALUE"
bad_spec "count beyond the spec" "$(python3 -c 'import struct;b=b"OUTRUN-SPEC-2\x000\x000\x00022\x00/\x00chroot\x000\x0060000\x00";print((struct.pack(">I",len(b))+b).hex())')" "exceeds the spec"
# Same spec with one extra NUL at the end and the length counting it.
trail="$(python3 -c "import struct,sys;b=bytes.fromhex('$good')[4:]+b'x\0';print((struct.pack('>I',len(b))+b).hex())")"
bad_spec "trailing bytes" "$trail" "unexpected bytes at its end"

python3 "$T/client.py" mkspec '{"argv":["true"]}' >"$T/spec"
"$H" exec /run/outrun/s-nope <"$T/spec" >/dev/null 2>"$T/err"
check "exec on a missing session exits 254" 254 $?
check "... message" "outrun-helper: session /run/outrun/s-nope is not running: No such file or directory" "$(cat "$T/err")"
mkdir -m 0700 /run/outrun/s-fake
echo $$ >/run/outrun/s-fake/init.pid
"$H" exec /run/outrun/s-fake <"$T/spec" >/dev/null 2>"$T/err"
check "exec refuses an init.pid that is not a namespace's PID 1" \
  "outrun-helper: session /run/outrun/s-fake is not running: its init.pid does not name the init of a pid namespace" "$(cat "$T/err")"
chmod 0755 /run/outrun/s-fake
"$H" exec /run/outrun/s-fake <"$T/spec" >/dev/null 2>"$T/err"
check "exec refuses a session dir that is not 0700" \
  "outrun-helper: session /run/outrun/s-fake is not running: does not have mode 0700" "$(cat "$T/err")"
rm -rf /run/outrun/s-fake

echo "# exec on a pty"
run_exec pty "$S" '{"uid":65534,"gid":65534,"argv":["sh","-c",
  "test -t 0 && echo is-a-tty; read -r pid comm st ppid pgrp sess tty tpgid rest </proc/self/stat; test \"$pgrp\" = \"$tpgid\" && echo foreground-job; stty -a | tr \" ;\" \"\\n\\n\" | grep -x -e icanon -e echo -e isig | sort | tr \"\\n\" \" \"; echo; echo \"$FOO\"; exit 5"],
  "env":["FOO=tty-env","PATH=/usr/bin:/bin"]}'
check "pty: exit code" "exit 5" "$RES"
check "pty: tty stdin, foreground job, terminal modes restored" "is-a-tty
foreground-job
echo icanon isig 
tty-env" "$OUT"
if grep -q "OUTRUN-SPEC" "$T/out"; then notok "pty: the spec is not echoed" "$(cat -v "$T/out")"; else ok "pty: the spec is not echoed"; fi
run_exec pty "$S" '{"argv":["sh","-c","echo started; exec sleep 30"],"after":[["started",{"send":"\u0003"}]]}'
check "pty: ^C interrupts the command (helper dies of SIGINT)" "signal 2" "$RES"
run_exec pty "$S" '{"argv":["sh","-c","trap \"echo got-HUP; exit 4\" HUP; echo started; while :; do sleep 0.1; done"],
  "after":[["started",{"signal":1}]]}'
check "pty: a signal to the helper goes to the command's process group" "exit 4" "$RES"
check_contains "... and the command saw it" "got-HUP" "$OUT"
# `signal SESSION HANGUP` (the local terminal went away) hangs up the command's pty: the command
# gets SIGHUP (through its helper, the session leader), then reads see end of file.
run_exec pty "$S" '{"argv":["sh","-c","trap \"h=1\" HUP; echo started; read -r x; r=$?; exit $((h * 10 + r))"],
  "after":[["started",{"run":["'"$H"'","signal","'"$S"'","HANGUP"]}]]}'
check "pty: HANGUP gives the command SIGHUP, then end of file on its terminal" "exit 11" "$RES"
run_exec pty "$S" '{"argv":["sh","-c","echo started; exec sleep 30"],"after":[["started",{"run":["'"$H"'","signal","'"$S"'","HANGUP"]}]]}'
check "pty: HANGUP ends a command that does not handle SIGHUP (helper dies of SIGHUP)" "signal 1" "$RES"
# A hung-up interactive bash dies of SIGHUP (locally too), rather than exiting 0 on end of file:
# the signal has to be there before its read ends.
for i in 1 2 3; do
  run_exec pty "$S" '{"argv":["bash","--norc","--noprofile","-i"],"env":["PS1=started> ","PATH=/usr/bin:/bin"],
    "after":[["started> ",{"run":["'"$H"'","signal","'"$S"'","HANGUP"]}]]}'
  check "pty: HANGUP: bash -i dies of SIGHUP, as locally (run $i)" "signal 1" "$RES"
done
run_exec pipe "$S" '{"argv":["sh","-c","trap \"exit 7\" HUP; echo started; while :; do sleep 0.1; done"],
  "after":[["started",{"run":["'"$H"'","signal","'"$S"'","HANGUP"]}]]}'
check "pipes: HANGUP is SIGHUP to the command" "exit 7" "$RES"
run_exec pty "$S" '{"argv":["sh","-c","printf %s \"$BIG\" | md5sum"],"big_env":100000}'
check "pty: a 100 kB spec with every byte value arrives intact" \
  "$(python3 -c 'import hashlib; print(hashlib.md5((bytes(range(1, 256)) * 393)[:100000]).hexdigest())')  -" "$OUT"
run_exec pty "$S" '{"argv":["no-such-command-xyz"]}'
check "pty: missing command" "exit 127|outrun: no-such-command-xyz: command not found" "$RES|$OUT"

echo "# ending sessions"
# A long command running when the agent dies must die with it.
timeout 40 python3 "$T/client.py" pipe "$H" "$S" '{"argv":["sleep","300"],"timeout":30}' "$T/res-long" >/dev/null 2>&1 &
LONG=$!
BG_PIDS+=("$LONG")
NS="$(readlink "/proc/$INIT/ns/pid")"
# PID 1, the agent program (the exec'd `sleep 1000`), its straggler and the command `sleep 300`
# (a child of its exec helper, which stays outside the namespace).
for ((i = 0; i < 100; i++)); do [[ "$(procs_in_ns "$NS" | wc -l)" == 4 ]] && break; sleep 0.1; done
check "the session's namespace holds PID 1, the agent, the straggler and the command" "4" "$(procs_in_ns "$NS" | wc -l)"
AGENT_PROG="$(ps -o pid= --ppid "$INIT" | tr -d ' ')"
check "PID 1 has one child, the agent program" "sleep 1000" "$(ps -o args= -p "$AGENT_PROG")"
kill -KILL "$AGENT_PROG"
wait "$AGENT"
check "agent exits 137 when its program is killed" 137 $?
wait "$LONG"
check "a command still running dies with the session" "signal 9" "$(cat "$T/res-long" 2>&1)"
check "the session dir is removed" "no" "$([[ -e "$S" ]] && echo yes || echo no)"
check "no process remains in the session's pid namespace" "" "$(procs_in_ns "$NS")"

start_agent s-second || exit 1
NS="$(readlink "/proc/$INIT/ns/pid")"
kill -TERM "$AGENT"
wait "$AGENT"
check "SIGTERM to the agent helper reaches the program (exit 143)" 143 $?
check "... session dir removed" "no" "$([[ -e "$S" ]] && echo yes || echo no)"
check "... no process remains" "" "$(procs_in_ns "$NS")"

start_agent s-third || exit 1
NS="$(readlink "/proc/$INIT/ns/pid")"
kill -KILL "$AGENT"
wait "$AGENT" 2>/dev/null
for ((i = 0; i < 50; i++)); do [[ -z "$(procs_in_ns "$NS")" ]] && break; sleep 0.1; done
check "SIGKILL to the agent helper ends the whole namespace (PDEATHSIG)" "" "$(procs_in_ns "$NS")"
check "... and leaves a stale session dir" "yes" "$([[ -e "$S/helper.pid" ]] && echo yes || echo no)"
"$H" agent /run/outrun/s-fourth -- true
check "... which the next agent start removes" "" "$(ls -A /run/outrun)"

echo "# leftovers"
check "nothing left under /run/outrun" "" "$(ls -A /run/outrun)"
# Mounts this test makes: on /run/outrun/..., or sources named outrun-helper-test, outrun-test-tmp,
# leak-check (other projects' mounts may mention "outrun" and are none of our business).
check "none of this test's mounts in the host's mount table" "" \
  "$(awk '$5 ~ "^/run/outrun(/|$)" || / - [^ ]+ (outrun-helper-test|outrun-test-tmp|leak-check) / {print}' /proc/1/mountinfo)"
left=""
for ino in "${NS_INODES[@]}"; do left+="$(procs_in_ns "$ino")"; done
check "no process left in any session namespace" "" "$left"

echo "# $PASS passed, $FAIL failed; helper size $(stat -c %s "$H") bytes"
((FAIL == 0))

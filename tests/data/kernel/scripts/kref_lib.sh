# common helpers for kref transcript scripts
OUTDIR="${KREF_OUTDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
start() {
  OUT="$OUTDIR/$1.txt"
  echo "# kernel: $(uname -r), iproute2: $(ip -V)" > "$OUT"
}
# run CMD: append "$ CMD", merged output, "[exit N]"
run() {
  local cmd="$1" tmp rc
  tmp=$(mktemp)
  printf '$ %s\n' "$cmd" >> "$OUT"
  bash -c "$cmd" > "$tmp" 2>&1 < /dev/null
  rc=$?
  cat "$tmp" >> "$OUT"
  if [ -s "$tmp" ] && [ "$(tail -c1 "$tmp" | od -An -c | tr -d ' ')" != '\n' ]; then
    printf '\n[no newline at end of output]\n' >> "$OUT"
  fi
  printf '[exit %d]\n' "$rc" >> "$OUT"
  rm -f "$tmp"
}
# silent setup helper (not recorded) - dies on failure
quiet() { bash -c "$1" >/dev/null 2>&1 || { echo "SETUP FAILED: $1" >&2; }; }
cleanup_ns() { for n in "$@"; do ip netns del "$n" 2>/dev/null; done; true; }
# run_bg CMD: start CMD in background; transcript shows "$ CMD &" and "[started in background]"
run_bg() {
  BG_CMD="$1"; BG_OUT=$(mktemp)
  printf '$ %s &\n[started in background]\n' "$BG_CMD" >> "$OUT"
  bash -c "$BG_CMD" > "$BG_OUT" 2>&1 < /dev/null &
  BG_PID=$!
  sleep 0.5
}
# bg_collect [kill]: wait for (or kill) the background job and record its output
bg_collect() {
  if [ "$1" = kill ]; then
    # kill only the process group members we started: children of BG_PID then BG_PID
    pkill -TERM -P "$BG_PID" 2>/dev/null; kill "$BG_PID" 2>/dev/null
  fi
  wait "$BG_PID"; local rc=$?
  printf '[background output of: %s]\n' "$BG_CMD" >> "$OUT"
  cat "$BG_OUT" >> "$OUT"
  if [ -s "$BG_OUT" ] && [ "$(tail -c1 "$BG_OUT" | od -An -c | tr -d ' ')" != '\n' ]; then
    printf '\n[no newline at end of output]\n' >> "$OUT"
  fi
  if [ "$1" = kill ]; then printf '[exit %d, after being killed with SIGTERM]\n' "$rc" >> "$OUT"; else printf '[exit %d]\n' "$rc" >> "$OUT"; fi
  rm -f "$BG_OUT"
}

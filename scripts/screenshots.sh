#!/usr/bin/env bash
# Renders screenshots/*.png of the terminal debugger as it really draws: each screen is the
# real `trowel replay` / `trowel debug` running in tmux, captured with its colours
# (`tmux capture-pane -e`), turned into HTML by aha (Debian's ANSI-to-HTML converter) and
# photographed by headless Chromium. The live shots build testdata/traces/tour against a
# local registry (scripts/testenv.sh), so this runs as root like the tests.
#
#   scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

need=(aha chromium fonts-dejavu-core tmux)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
scripts/install-deps.sh
cargo build --quiet --bin trowel
trowel=${CARGO_TARGET_DIR:-$root/target}/debug/trowel
out=$root/screenshots
mkdir -p "$out"
work=$(mktemp -d /tmp/trowel-shots.XXXXXX)
sessions=()
cleanup() {
  for s in "${sessions[@]}"; do tmux kill-session -t "$s" 2>/dev/null || true; done
  scripts/testenv.sh down "$work/env" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

cols=120
rows=36

start() { # session command
  tmux new-session -d -s "$1" -x "$cols" -y "$rows" "TERM=xterm-256color COLORTERM=truecolor $2; sleep 600"
  sessions+=("$1")
}

wait_for() { # session text
  for _ in $(seq 1 600); do
    tmux capture-pane -p -t "$1" | grep -qF -- "$2" && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2
  tmux capture-pane -p -t "$1" >&2
  return 1
}

keys() { # session key... (each sent as typed, with a frame between them)
  local s=$1
  shift
  for k in "$@"; do
    case "$k" in
      Enter | Escape | BSpace) tmux send-keys -t "$s" "$k" ;;
      *) tmux send-keys -t "$s" -l "$k" ;;
    esac
    sleep 0.25
  done
  sleep 0.5
}

# aha's colour names, mapped onto a dark palette that reads well in a README.
palette=(
  's/filter: contrast(70%) brightness(190%);//g'
  's/color:dimgray;/color:#7f849c;/g'
  's/color:aqua;/color:#89dceb;/g'
  's/color:lime;/color:#a6e3a1;/g'
  's/color:yellow;/color:#f9e2af;/g'
  's/color:red;/color:#f38ba8;/g'
  's/color:blue;/color:#89b4fa;/g'
  's/color:fuchsia;/color:#f5c2e7;/g'
  's/color:olive;/color:#e5c890;/g'
  's/color:teal;/color:#94e2d5;/g'
  's/color:purple;/color:#cba6f7;/g'
  's/color:green;/color:#a6e3a1;/g'
  's/color:maroon;/color:#eba0ac;/g'
  's/color:navy;/color:#74c7ec;/g'
  's/color:gray;/color:#bac2de;/g'
  's/color:white;/color:#cdd6f4;/g'
  's/background-color:yellow;/background-color:#f9e2af;/g'
  's/background-color:olive;/background-color:#e5c890;/g'
  's/background-color:aqua;/background-color:#89dceb;/g'
  's/background-color:blue;/background-color:#89b4fa;/g'
  's/background-color:lime;/background-color:#a6e3a1;/g'
  's/background-color:red;/background-color:#f38ba8;/g'
  's/background-color:maroon;/background-color:#eba0ac;/g'
  's/color:black;/color:#11111b;/g'
)

shoot() { # session name
  local s=$1 name=$2
  tmux capture-pane -e -p -t "$s" >"$work/$name.ans"
  local sed_args=()
  for e in "${palette[@]}"; do sed_args+=(-e "$e"); done
  {
    cat <<HTML
<!DOCTYPE html><html><head><meta charset="utf-8"><style>
html, body { margin: 0; background: #1e1e2e; }
pre { margin: 0; padding: 14px 16px; color: #cdd6f4; background: #1e1e2e;
      font-family: 'DejaVu Sans Mono', monospace; font-size: 15px; line-height: 18px; }
</style></head><body><pre>
HTML
    aha --no-header <"$work/$name.ans" | sed "${sed_args[@]}"
    echo '</pre></body></html>'
  } >"$work/$name.html"
  # 120 columns of DejaVu Sans Mono at 15px are about 1086px wide; 36 rows of 18px, 648px.
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/chromium" --hide-scrollbars --force-device-scale-factor=1 \
    --window-size=1120,680 --screenshot="$out/$name.png" "file://$work/$name.html" >/dev/null 2>&1
  echo "screenshots/$name.png" >&2
}

replay() { # session trace
  start "$1" "$trowel replay --no-mouse testdata/traces/$2.jsonl"
  wait_for "$1" "trowel replay"
}

# Replays of the recorded traces.
replay r1 tour
keys r1 k k k k 2
shoot r1 steps-changes
keys r1 5
shoot r1 layers-waste
keys r1 6 / unit Enter
shoot r1 logs-search
keys r1 Escape 2 "?"
shoot r1 help

replay r2 cache-rebuild
keys r2 4
shoot r2 cache-miss

replay r3 fail-run-exit
shoot r3 failed-step

# Shell sessions as entries of their own, and time paused shown apart from run time.
replay r5 shell
shoot r5 shell-paused

# The whole file system at a step (a trace recorded with --trace-base-listings).
replay r4 files
keys r4 j j 8
shoot r4 files
# Two recorded builds side by side (message.txt changed between them).
start r6 "$trowel replay --no-mouse testdata/traces/cache-cold.jsonl --compare testdata/traces/cache-rebuild.jsonl"
wait_for r6 "trowel compare"
shoot r6 compare

# A live session: a breakpoint, a step, the File pane's diff, then the push review.
scripts/testenv.sh up "$work/env" $$ >/dev/null
# shellcheck disable=SC1091
. "$work/env/env"
reg=$TROWEL_TEST_REGISTRY
start live "$trowel debug --no-mouse --context testdata/traces/tour --build-arg REGISTRY=$reg --destination $reg/screenshots/tour:1 --break 17 --work-dir $work"
wait_for live "paused before L17"
shoot live paused
keys live 7
shoot live breakpoints
keys live 1 n
wait_for live "paused before L19"
# After n, line 17 (the step just run) is selected with its changes shown.
keys live 2 G Enter
wait_for live "+ debug = false"
shoot live file-diff
keys live Escape 1 c
wait_for live "Push now?"
shoot live push-review
keys live y
wait_for live "✓ built"
keys live Escape q

# Fix and retry: the failed step edited at its failure pause and run; the Steps pane marks it,
# and `e` shows the attempt and what the Dockerfile says.
start retry "$trowel debug --no-mouse --context testdata/corpus/fail-run-exit --build-arg REGISTRY=$reg --no-push --work-dir $work"
wait_for retry "paused after L3"
keys retry E BSpace BSpace BSpace BSpace BSpace BSpace "echo fixed" Enter
wait_for retry "✓ built"
keys retry Escape 1 g g j e
wait_for retry "attempt 2"
shoot retry retry
keys retry Escape q

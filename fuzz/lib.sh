# Sourced by run.sh and long.sh: the toolchain, sanitizer and libFuzzer options every run shares,
# so a timed run and a long run test the same build under the same limits.
#
# cargo-fuzz needs nightly for the sanitizer flags; without nightly the stable toolchain is used
# with RUSTC_BOOTSTRAP=1 and no sanitizer. FUZZ_SANITIZER=none chooses no sanitizer on nightly
# too: AddressSanitizer makes the parser targets 3 to 4 times slower, and they reach no unsafe
# code of trowel's own (docs/hardening.md, "Sanitizer"). Give such a build its own
# CARGO_TARGET_DIR, or cargo rebuilds each time the choice changes.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=${FUZZ_SANITIZER:-address}
else
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
  sanitizer=none
fi
# A unit slower than 10 s is a hang; 2 GiB of RSS is unbounded memory. Inputs up to 64 KiB:
# Dockerfiles, layers and manifests are larger than libFuzzer's 4 KiB default in real life.
limits=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)

# The built fuzzer binary of target $1 (what `cargo fuzz run` starts, without its rebuild check,
# so parallel jobs do not contend for cargo's lock).
fuzzer_binary() {
  echo "$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release/$1"
}

# The last coverage figure libFuzzer printed in log $1.
last_coverage() {
  grep -o 'cov: [0-9]*' "$1" | tail -1 | grep -o '[0-9]*' || echo 0
}

# Executions libFuzzer counted in log $1 (its final stats).
executions() {
  grep -o 'stat::number_of_executed_units: *[0-9]*' "$1" | grep -o '[0-9]*$' || echo 0
}

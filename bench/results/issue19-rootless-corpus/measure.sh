#!/usr/bin/env bash
# The Debian corpus cases built as the ordinary user trowel-rl (rootless isolation), as
# tests/corpus.rs's rootless pass builds them (same flags, the user's own --mount-cache-dir),
# build only (no checks): a first run with that cache dir empty (cold: every package downloaded),
# then a second (warm). One line per build: case, run, seconds, exit code, uptime.
#   measure.sh TROWEL REGISTRY OUT
set -u
trowel=$1 reg=$2 out=$3
repo=$(cd "$(dirname "$0")/../../.." && pwd)
user=trowel-rl uid=$(id -u $user) gid=$(id -g $user)
range=$(grep "^$user:" /etc/subuid | tr : -)
cache=/var/cache/trowel-tests/mount-cache-rootless-$uid-$range
mkdir -p "$cache" && chown $uid:$gid "$cache"
ws=$(mktemp -d /var/tmp/rl-measure-XXXX) && mkdir -p $ws/tmp $ws/home && chown -R $uid:$gid $ws && chmod 755 $ws
declare -A flavour=([cross-compile-go]=go [mount-cache-apt]=minbase [mount-cache-cargo]=rust [mount-cache-go]=go [mount-cache-npm]=node [mount-cache-pip]=python)
for runname in cold warm; do
  for c in cross-compile-go mount-cache-apt mount-cache-cargo mount-cache-go mount-cache-npm mount-cache-pip; do
    extra=(); [ $c = cross-compile-go ] && extra=(--custom-platform=linux/arm64)
    dir=$repo/testdata/corpus/$c
    start=$(date +%s.%N)
    setpriv --reuid $uid --regid $gid --init-groups -- env -i HOME=$ws/home USER=$user PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin TMPDIR=$ws/tmp \
      "$trowel" build --context "$dir" --dockerfile "$dir/Dockerfile" --destination "$reg/corpus-measure/$c:user" \
      --build-arg REGISTRY=$reg --build-arg DEBIAN=$reg/debian:${flavour[$c]} --mount-cache-dir "$cache" "${extra[@]}" \
      > $ws/log-$c-$runname 2>&1
    rc=$?
    end=$(date +%s.%N)
    printf '%s %s %.1f %s %s\n' $c $runname "$(echo "$end - $start" | bc)" $rc "$(uptime | sed 's/.*load average: //')" | tee -a "$out"
  done
done
rm -rf $ws

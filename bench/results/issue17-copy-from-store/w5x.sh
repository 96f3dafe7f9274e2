#!/bin/bash
# w5x.sh BIN STATE : cold (N=1), then N=2 (the builder cached, the COPY --from runs); kaniko's flags
BIN=$1 S=$2; REG=127.0.0.1:35481; tag=$(date +%s%N)
rm -rf $S; mkdir -p $S/work $S/cache-dir
run() { /usr/bin/time -f "$1 %e s %U u %S sys" $BIN build --context /var/tmp/w5x/ctx --destination $REG/w5x/$tag:latest \
 --build-arg BASE_REGISTRY=$REG --build-arg N=$1 --isolation chroot --work-dir $S/work --log-format text --cache=true \
 --cache-repo $REG/w5x-cache/$tag --cache-dir $S/cache-dir --trace $S/trace.$1 > $S/log.$1 2>&1; tail -1 $S/log.$1; }
run 1; run 2

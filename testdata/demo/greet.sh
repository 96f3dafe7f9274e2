#!/bin/sh
echo "Hello from a trowel-built image!"
echo "built as: @WHO@, running as: $(whoami) in $(pwd)"
cat /etc/motd

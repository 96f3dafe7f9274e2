#!/bin/sh
# The tour's application: prints its configuration.
echo "app running with:"
cat /etc/app/config.ini

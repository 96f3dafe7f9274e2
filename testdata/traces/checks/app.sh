#!/bin/sh
echo "hello from the checks trace"

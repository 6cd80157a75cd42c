#!/usr/bin/env bash
echo "start $EPOCHREALTIME"

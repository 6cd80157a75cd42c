#!/usr/bin/env bash
echo "started $$"
sleep "${1:-2}"
echo "finished"

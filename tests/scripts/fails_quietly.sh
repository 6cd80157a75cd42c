#!/usr/bin/env bash
exit 7

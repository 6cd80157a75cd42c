#!/usr/bin/env bash
# Prints which database variables the job was given.
echo "url=${JR_DB_URL-unset} path=${JR_DB_PATH-unset}"

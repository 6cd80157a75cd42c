import os
import sys

print("hello from", os.environ["JR_JOB_ID"], os.environ["JR_RUN_ID"], os.environ["JR_DB_PATH"])
print("stdin says:", repr(sys.stdin.read()))
print('JR_RESULT:{"tokens": 42, "meta": "model-x"}')
print("bye")

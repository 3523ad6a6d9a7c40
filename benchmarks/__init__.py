"""The benchmark harness: herald against raw Celery, side by side in one run.

``python -m benchmarks [--quick] [--out DIR]`` starts its own API and worker
processes on a fresh Postgres database and a unique set of Redis queues, runs
every measurement and writes a table, a JSON file and a PNG plot.
"""

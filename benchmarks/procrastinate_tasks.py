"""The no-op job for Procrastinate: a task of its Django app, as its documentation declares one."""
from procrastinate.contrib.django import app


@app.task(queue="bench_peers")
def add(x: int, y: int) -> int:
    return x + y

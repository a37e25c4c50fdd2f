"""Callables the tests wire into contract slots."""

import os


def exploding_validator(output):
    raise RuntimeError("validator crashed")


def hard_exit_validator(output):
    # A real crash between the model calls and the write: no cleanup, no finally blocks.
    os._exit(3)

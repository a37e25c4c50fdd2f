"""An importable "challenge package" base class, as issue-10 workspaces provide one.

It has `tick` but no `predict`, so a model that forgets `predict` is BAD_IMPLEMENTATION.
"""


class ModelBaseClass:
    def tick(self, data):
        self.data = data

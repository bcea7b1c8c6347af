"""The safety supervisor, tick by tick."""

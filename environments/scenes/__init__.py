"""The environments that ship with vrex: one module (or package) each, found by the registry's package scan.

Each module exposes ``ENVIRONMENT``, an instance of
:class:`environments.environment.Environment`; see that module for how to add one.
"""

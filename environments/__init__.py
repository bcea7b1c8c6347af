"""Rendering: the moderngl renderer core, displays (OpenVR, desktop, headless) and the environments.

The therapy runtime talks to this package through :class:`environments.scene_state.SceneState`
(what to show) and :class:`environments.scene_state.PatientInput` (what the patient did),
plus the environment catalogue in :mod:`environments.registry` (what exists, its levels and
dials, :func:`environments.registry.validate_dial` for a therapist's dial request).

Layout: ``displays/`` (where frames go: base, headless, desktop, openvr), ``renderer``,
``shaders``, ``meshes``, ``scene_build`` and ``render_loop`` (the renderer core),
``environment`` (the one interface an environment implements, and how to add one) and
``scenes/`` (the built-in environments, one module each, found by the registry).
"""

"""Rendering: the moderngl renderer core, displays (OpenVR, desktop, headless) and the environments.

The therapy runtime talks to this package through :class:`environments.scene_state.SceneState`
(what to show) and :class:`environments.scene_state.PatientInput` (what the patient did),
plus the environment catalogue in :mod:`environments.registry`.
"""

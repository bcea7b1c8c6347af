"""The OpenVR path without SteamVR: conversions with the real openvr structs, and the missing-runtime error.

The per-frame loop (poses, buttons, quit, SUDS, compositor faults) is in ``test_openvr_loop.py``.
"""

from __future__ import annotations

import math

import numpy as np
import openvr
import pytest

import main
from environments.displays.openvr import hmd34_to_numpy, hmd44_to_numpy, init_error_message


def _hmd34(rows) -> "openvr.HmdMatrix34_t":
    m = openvr.HmdMatrix34_t()
    for i in range(3):
        for j in range(4):
            m.m[i][j] = rows[i][j]
    return m


def test_pose_34_becomes_a_4x4_that_moves_points_like_openvr_says():
    # 90 degrees about +Y, then 1.7 m up and 0.5 m back: OpenVR's row-major, v' = M v.
    c, s = math.cos(math.pi / 2), math.sin(math.pi / 2)
    rows = [[c, 0, s, 0.0], [0, 1, 0, 1.7], [-s, 0, c, 0.5]]
    m4 = hmd34_to_numpy(_hmd34(rows))
    assert m4.shape == (4, 4)
    np.testing.assert_allclose(m4[3], [0, 0, 0, 1])
    p = m4 @ np.array([0.0, 0.0, -1.0, 1.0])  # a point 1 m ahead of the headset
    np.testing.assert_allclose(p[:3], [-1.0, 1.7, 0.5], atol=1e-6)


def test_in_place_conversion_reuses_the_array():
    out = np.zeros((4, 4))
    res = hmd34_to_numpy(_hmd34([[1, 0, 0, 0.032], [0, 1, 0, 0], [0, 0, 1, 0]]), out)
    assert res is out and out[0, 3] == pytest.approx(0.032) and out[3, 3] == 1.0


def test_projection_44_keeps_openvrs_row_major_maths_convention():
    near, far, t = 0.05, 100.0, 1.2
    proj = openvr.HmdMatrix44_t()
    vals = [[1 / t, 0, 0.1, 0], [0, 1 / t, 0, 0], [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0]]
    for i in range(4):
        for j in range(4):
            proj.m[i][j] = vals[i][j]
    p = hmd44_to_numpy(proj)
    np.testing.assert_allclose(p, vals, rtol=1e-6)
    clip = p @ np.array([0.0, 0.0, -near, 1.0])
    assert clip[2] / clip[3] == pytest.approx(-1.0, abs=1e-4)  # near plane -> NDC -1 (GL convention)


def test_missing_runtime_gives_a_clear_display_error():
    from environments.displays import open_display
    from environments.errors import DisplayUnavailableError

    with pytest.raises(DisplayUnavailableError) as err:
        open_display("openvr")
    msg = str(err.value)
    assert "SteamVR" in msg and "start SteamVR" in msg and "--display desktop" in msg


def test_init_error_message_names_the_openvr_error():
    with pytest.raises(openvr.error_code.InitError) as err:
        openvr.init(openvr.VRApplication_Scene)  # no SteamVR on test machines: the real error
    msg = init_error_message(err.value)
    assert type(err.value).__name__ in msg
    assert "start SteamVR" in msg and "--display desktop" in msg


def test_missing_runtime_exits_2_with_exactly_one_line(capfd):
    """capfd captures the file descriptors, so libopenvr_api's own prints would show up here too."""
    rc = main.run(["envs", "show", "heights", "--display", "openvr", "--frames", "1"])
    assert rc == 2
    out, err = capfd.readouterr()
    assert err.startswith("vrex: error: ") and "start SteamVR" in err and "Traceback" not in err
    assert out == "" and err.count("\n") == 1, (out, err)  # no "Unable to read VR Path Registry ..."


def test_missing_runtime_prints_one_line_from_a_fresh_process():
    """The real CLI in its own process: stdout empty, stderr exactly our one line, exit status 2."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(main.__file__).resolve().parent
    proc = subprocess.run([sys.executable, str(root / "main.py"), "envs", "show", "heights", "--display", "openvr",
                           "--frames", "1"], check=False, capture_output=True, text=True, timeout=60, cwd=root,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vrex: error: ") and "SteamVR" in lines[0], proc.stderr


def test_quiet_native_output_restores_the_descriptors(capfd):
    import os

    from environments.displays.openvr import quiet_native_output

    with quiet_native_output():
        os.write(1, b"hidden out\n")
        os.write(2, b"hidden err\n")
    os.write(1, b"shown\n")
    out, err = capfd.readouterr()
    assert out == "shown\n" and err == ""

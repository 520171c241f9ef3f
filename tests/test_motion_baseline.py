"""experiments/motion_baseline.py (a diagnostic score): hand-computed speeds."""
import importlib.util

import numpy as np

from vadflow.config import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("motion_baseline", ROOT / "experiments" / "motion_baseline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_centre_speed_is_in_body_heights_per_frame_over_detected_joints():
    window_speed = load_script().window_speed
    T, V = 6, 18
    base = np.zeros((V, 2), np.float32)
    base[:, 1] = np.linspace(0, 100, V)  # a person 100 px tall
    kp = np.stack([base + [3.0 * t, 0.0] for t in range(2 * T)])  # moves 3 px per frame
    vis = np.ones((2 * T, V), bool)
    vis[:, 0] = False
    kp[:, 0] = [1000.0, -500.0]  # an undetected joint far away must not move the centre
    speed = window_speed(kp, vis, np.array([0, T]), T)
    height = base[1:, 1].max() - base[1:, 1].min()
    np.testing.assert_allclose(speed, 3.0 / height, rtol=1e-5)
    still = window_speed(np.repeat(kp[:1], 2 * T, 0), vis, np.array([0]), T)
    np.testing.assert_allclose(still, 0.0, atol=1e-7)
    dropped = vis.copy()
    dropped[2] = False  # a frame with nobody detected: its two steps are left out, not counted as 0
    np.testing.assert_allclose(window_speed(kp, dropped, np.array([0]), T), 3.0 / height, rtol=1e-5)

"""experiments/motion_baseline.py (diagnostic scores): hand-computed speeds and sizes."""
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


def test_body_size_is_the_median_pixel_height_of_detected_joints():
    window_size = load_script().window_size
    T, V = 5, 18
    kp = np.zeros((2 * T, V, 2), np.float32)
    heights = np.array([100, 120, 80, 100, 300, 50, 50, 50, 50, 50], np.float32)  # frame 4: an outlier
    kp[..., 1] = 10 + heights[:, None] * np.linspace(0, 1, V)[None, :]
    vis = np.ones((2 * T, V), bool)
    vis[:, -1] = False  # the lowest joint is undetected: height of the others only
    kp[:, -1, 1] = 5000.0
    seen_height = heights * np.linspace(0, 1, V)[-2]
    np.testing.assert_allclose(window_size(kp, vis, np.array([0, T]), T), [np.median(seen_height[:5]), seen_height[5]], rtol=1e-5)
    few = vis.copy()
    few[:T, 4:] = False  # 4 joints in every frame of the first window: too few, it gets the others' median
    np.testing.assert_allclose(window_size(kp, few, np.array([0, T]), T), [seen_height[5], seen_height[5]], rtol=1e-5)

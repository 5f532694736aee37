"""Procedural pictures of the five synthetic modalities, one function each, with or without a lesion.

Every renderer takes two numpy Generators (anatomy and lesion: the only sources of randomness, so a
seed fixes the pixels), the finding and the side length, and returns a square RGB PIL image. Anatomy varies from picture to
picture (sizes, positions, contrast, noise); the lesion is placed by its finding: its centre in the
left or right, upper or lower part of the picture, its radius small or large. Lesions are sized and
contrasted to stay visible after the model's resize to 64x64 (a small lesion still covers about one
8-pixel patch there).

All geometry below is in picture fractions (0..1 across and down), so any size renders the same scene.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from qilin_med_vl.data.synth.findings import (
    ABDOMINAL_CT,
    CHEST_XRAY,
    HEAD_CT,
    HISTOLOGY,
    LARGE,
    LEFT,
    SMALL,
    ULTRASOUND,
    UPPER,
    Finding,
)

# Lesion radius as a fraction of the picture side: (low, high) of the uniform draw.
RADIUS_RANGE = {SMALL: (0.065, 0.08), LARGE: (0.13, 0.16)}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) pixel-centre coordinates in picture fractions, each (size, size)."""
    coordinates = (np.arange(size, dtype=np.float64) + 0.5) / size
    return np.meshgrid(coordinates, coordinates, indexing="ij")


def _ellipse(y, x, centre_y, centre_x, radius_y, radius_x, edge: float = 0.08) -> np.ndarray:
    """Soft-edged ellipse mask in [0, 1]: 1 inside, 0 outside, a ramp `edge` (in radii) wide."""
    distance = np.sqrt(((y - centre_y) / radius_y) ** 2 + ((x - centre_x) / radius_x) ** 2)
    return np.clip((1.0 + edge - distance) / (2 * edge), 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a cells x cells random grid, bilinearly enlarged."""
    coarse = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float64)


def lesion_geometry(
    rng: np.random.Generator, finding: Finding, x_centres: tuple[float, float], y_centres: tuple[float, float]
) -> tuple[float, float, float]:
    """(centre y, centre x, radius) of the lesion; centres are (left, right) and (upper, lower) anchors."""
    centre_x = x_centres[0] if finding.side == LEFT else x_centres[1]
    centre_y = y_centres[0] if finding.region == UPPER else y_centres[1]
    low, high = RADIUS_RANGE[finding.size]
    jitter = 0.03
    return (
        centre_y + rng.uniform(-jitter, jitter),
        centre_x + rng.uniform(-jitter, jitter),
        rng.uniform(low, high),
    )


def _to_image(gray_or_rgb: np.ndarray) -> Image.Image:
    pixels = np.clip(np.rint(gray_or_rgb * 255.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return Image.fromarray(pixels, mode="RGB")


def render_chest_xray(
    rng: np.random.Generator, lesion_rng: np.random.Generator, finding: Finding, size: int
) -> Image.Image:
    """Frontal chest radiograph: dark lungs, ribs, bright mediastinum and heart, diaphragm; a bright mass."""
    y, x = _grid(size)
    scale = rng.uniform(0.93, 1.05)
    body = _ellipse(y, x, 0.55, 0.5, 0.6, 0.46 * scale, edge=0.1)
    image = 0.04 + 0.52 * body
    lung_height = 0.27 * rng.uniform(0.92, 1.06)
    lungs = np.zeros_like(image)
    for centre_x in (0.5 - 0.2 * scale, 0.5 + 0.2 * scale):
        lungs = np.maximum(lungs, _ellipse(y, x, 0.46, centre_x, lung_height, 0.15 * scale, edge=0.15))
    image -= 0.34 * lungs
    # ribs: bright arcs over the lungs, sagging towards the sides
    for rib in range(8):
        rib_y = 0.24 + rib * 0.062 + rng.uniform(-0.008, 0.008)
        curve = rib_y + 0.1 * ((x - 0.5) / 0.3) ** 2
        band = np.clip(1.0 - np.abs(y - curve) / 0.014, 0.0, 1.0)
        image += 0.13 * band * lungs
    mediastinum = _ellipse(y, x, 0.45, 0.5, 0.33, 0.065, edge=0.2)
    heart = _ellipse(y, x, 0.64, 0.55, 0.12, 0.15 * scale, edge=0.2)
    image = np.maximum(image, 0.62 * np.maximum(mediastinum, heart) * body)
    diaphragm = np.clip((y - (0.76 + 0.05 * np.abs(x - 0.5) / 0.5)) / 0.03, 0.0, 1.0)
    image = np.maximum(image, 0.58 * diaphragm * body)
    if finding.present:
        centre_y, centre_x, radius = lesion_geometry(lesion_rng, finding, (0.28, 0.72), (0.34, 0.6))
        image += 0.42 * _ellipse(y, x, centre_y, centre_x, radius, radius, edge=0.3)
    image = image * rng.uniform(0.9, 1.1) + 0.03 * _smooth_noise(rng, size, 8)
    image += rng.normal(0.0, 0.025, image.shape)
    return _to_image(image)


def render_head_ct(
    rng: np.random.Generator, lesion_rng: np.random.Generator, finding: Finding, size: int
) -> Image.Image:
    """Axial head CT: bright skull ring, grey brain, dark ventricles; a hyperdense lesion."""
    y, x = _grid(size)
    radius_y, radius_x = 0.42 * rng.uniform(0.95, 1.03), 0.36 * rng.uniform(0.95, 1.05)
    outer = _ellipse(y, x, 0.5, 0.5, radius_y, radius_x, edge=0.02)
    inner = _ellipse(y, x, 0.5, 0.5, radius_y - 0.035, radius_x - 0.035, edge=0.02)
    image = 0.95 * (outer - inner)
    brain = inner * (0.4 + 0.04 * _smooth_noise(rng, size, 10))
    image += brain
    for centre_x in (0.46, 0.54):  # the lateral ventricles, a dark butterfly in the middle
        image -= 0.2 * inner * _ellipse(y, x, 0.47, centre_x, 0.09, 0.025, edge=0.3)
    image -= 0.12 * inner * _ellipse(y, x, 0.5, 0.5, 0.3, 0.006, edge=0.5)  # the interhemispheric fissure
    if finding.present:
        centre_y, centre_x, radius = lesion_geometry(lesion_rng, finding, (0.33, 0.67), (0.34, 0.64))
        image += 0.4 * inner * _ellipse(y, x, centre_y, centre_x, radius, radius, edge=0.25)
    image += rng.normal(0.0, 0.02, image.shape)
    return _to_image(image)


def render_abdominal_ct(
    rng: np.random.Generator, lesion_rng: np.random.Generator, finding: Finding, size: int
) -> Image.Image:
    """Axial abdominal CT: body ellipse with fat rim, liver, spleen, kidneys, spine, aorta; a hypodense mass."""
    y, x = _grid(size)
    body_y, body_x = 0.34 * rng.uniform(0.93, 1.04), 0.46 * rng.uniform(0.94, 1.03)
    body = _ellipse(y, x, 0.5, 0.5, body_y, body_x, edge=0.02)
    tissue = _ellipse(y, x, 0.5, 0.5, body_y - 0.035, body_x - 0.035, edge=0.03)
    image = 0.24 * body + 0.2 * tissue + 0.03 * tissue * _smooth_noise(rng, size, 12)
    liver = _ellipse(y, x, 0.44, 0.33, 0.19, 0.17 * rng.uniform(0.9, 1.1), edge=0.1)  # patient right
    spleen = _ellipse(y, x, 0.45, 0.75, 0.1, 0.07, edge=0.15)
    image += 0.13 * liver * tissue + 0.12 * spleen * tissue
    for centre_x in (0.37, 0.63):
        image += 0.16 * _ellipse(y, x, 0.63, centre_x, 0.06, 0.045, edge=0.2)
    image = np.maximum(image, 0.95 * _ellipse(y, x, 0.7, 0.5, 0.06, 0.06, edge=0.1))  # vertebral body
    image = np.maximum(image, 0.8 * _ellipse(y, x, 0.58, 0.5, 0.025, 0.025, edge=0.2))  # aorta
    if finding.present:
        centre_y, centre_x, radius = lesion_geometry(lesion_rng, finding, (0.3, 0.7), (0.36, 0.58))
        image -= 0.3 * tissue * _ellipse(y, x, centre_y, centre_x, radius, radius, edge=0.2)
    image += rng.normal(0.0, 0.02, image.shape)
    return _to_image(image)


def render_ultrasound(
    rng: np.random.Generator, lesion_rng: np.random.Generator, finding: Finding, size: int
) -> Image.Image:
    """B-mode sector scan: a fan of speckle fading with depth, on black; a hypoechoic lesion, echogenic rim."""
    y, x = _grid(size)
    apex_y, half_angle = 0.04, np.deg2rad(rng.uniform(36.0, 40.0))
    depth = np.hypot(x - 0.5, y - apex_y)
    angle = np.arctan2(x - 0.5, y - apex_y)
    fan = np.clip((half_angle - np.abs(angle)) / 0.02, 0, 1) * np.clip((0.94 - depth) / 0.01, 0, 1)
    fan *= np.clip((depth - 0.1) / 0.01, 0, 1)
    echogenicity = 0.5 + 0.12 * _smooth_noise(rng, size, 6)
    echogenicity *= np.exp(-1.1 * depth)  # attenuation with depth
    echogenicity += 0.25 * _ellipse(y, x, 0.22, 0.5, 0.012, 0.5, edge=0.5)  # a bright fascia line
    if finding.present:
        centre_y, centre_x, radius = lesion_geometry(lesion_rng, finding, (0.36, 0.64), (0.38, 0.68))
        lesion = _ellipse(y, x, centre_y, centre_x, radius, radius, edge=0.15)
        # an echogenic rim: without it a dark lesion looks like the black outside the fan
        rim = np.clip(
            _ellipse(y, x, centre_y, centre_x, 1.35 * radius, 1.35 * radius, edge=0.1) - lesion, 0, 1
        )
        echogenicity = echogenicity * (1.0 - 0.85 * lesion) + 0.5 * rim
    speckle = rng.rayleigh(0.8, (size, size))
    image = np.clip(echogenicity * speckle * fan, 0.0, 1.0)
    return _to_image(image)


def _stamp_nuclei(rgb: np.ndarray, rng: np.random.Generator, centres: np.ndarray, radius: float, dark: float):
    """Paint purple hematoxylin-stained nuclei (ellipses of about `radius` px) at `centres` (N, 2) in px."""
    size = rgb.shape[0]
    reach = int(np.ceil(radius * 1.6)) + 1
    offsets = np.arange(-reach, reach + 1)
    stretch = rng.uniform(0.7, 1.3, len(centres))[:, None, None]  # (N, 1, 1): elongated nuclei
    rows = np.floor(centres[:, 0])[:, None, None].astype(int) + offsets[None, :, None]  # (N, K, 1)
    cols = np.floor(centres[:, 1])[:, None, None].astype(int) + offsets[None, None, :]  # (N, 1, K)
    offset_y = rows + 0.5 - centres[:, 0, None, None]
    offset_x = cols + 0.5 - centres[:, 1, None, None]
    distance = np.sqrt((offset_y / (radius * stretch)) ** 2 + (offset_x * stretch / radius) ** 2)  # (N, K, K)
    weight = np.clip(1.5 - distance, 0.0, 1.0)
    rows, cols = np.broadcast_arrays(rows, cols)
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    coverage = np.zeros((size, size))
    np.maximum.at(coverage, (rows[inside], cols[inside]), weight[inside])  # overlapping nuclei do not add up
    nucleus_colour = np.array([0.32, 0.16, 0.5]) * dark
    rgb[:] = rgb * (1 - coverage[:, :, None]) + nucleus_colour * coverage[:, :, None]


def render_histology(
    rng: np.random.Generator, lesion_rng: np.random.Generator, finding: Finding, size: int
) -> Image.Image:
    """H&E-like section: pink stroma with pale spaces and scattered purple nuclei; a dense tumour nest."""
    y, x = _grid(size)
    stroma = _smooth_noise(rng, size, 16)
    pink = np.array([0.93, 0.62, 0.78]) + rng.uniform(-0.03, 0.03, 3)
    rgb = pink[None, None, :] * (0.92 + 0.08 * stroma[:, :, None])
    spaces = np.clip((_smooth_noise(rng, size, 9) - 0.55) / 0.1, 0.0, 1.0)[:, :, None]
    rgb = rgb * (1 - spaces) + np.array([0.97, 0.93, 0.96]) * spaces
    scale = size / 128.0
    background_count = int(140 * scale * scale)
    _stamp_nuclei(rgb, rng, rng.uniform(0, size, (background_count, 2)), 1.6 * scale, 1.0)
    if finding.present:
        centre_y, centre_x, radius = lesion_geometry(lesion_rng, finding, (0.3, 0.7), (0.3, 0.7))
        nest = _ellipse(y, x, centre_y, centre_x, radius, radius, edge=0.15)[:, :, None]
        rgb = rgb * (1 - 0.35 * nest) + np.array([0.55, 0.35, 0.65]) * 0.35 * nest
        count = int(np.pi * (radius * size) ** 2 / (3.2 * scale) ** 2)
        angles = lesion_rng.uniform(0, 2 * np.pi, count)
        distances = radius * size * np.sqrt(lesion_rng.uniform(0, 1, count))
        centres = np.stack(
            [centre_y * size + distances * np.sin(angles), centre_x * size + distances * np.cos(angles)],
            axis=1,
        )
        _stamp_nuclei(rgb, lesion_rng, centres, 2.3 * scale, 0.8)
    rgb += rng.normal(0.0, 0.015, rgb.shape)
    return _to_image(rgb)


Renderer = Callable[[np.random.Generator, np.random.Generator, Finding, int], Image.Image]
RENDERERS: dict[str, Renderer] = {
    CHEST_XRAY: render_chest_xray,
    HEAD_CT: render_head_ct,
    ABDOMINAL_CT: render_abdominal_ct,
    ULTRASOUND: render_ultrasound,
    HISTOLOGY: render_histology,
}


def render(modality: str, finding: Finding, size: int, seed: int) -> Image.Image:
    """The picture of one figure: `seed` alone decides its anatomy, noise and lesion placement.

    Anatomy and lesion draw from two generators spawned from the seed, so the same seed with and without
    a lesion gives the same patient, and the two pictures differ by the lesion alone.
    """
    anatomy_rng, lesion_rng = np.random.default_rng(seed).spawn(2)
    return RENDERERS[modality](anatomy_rng, lesion_rng, finding, size)

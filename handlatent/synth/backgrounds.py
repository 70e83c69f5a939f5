"""Procedural backgrounds for the synthetic hand renderer.

A background is fully described by one row of :class:`BackgroundParams`
(kind, two sRGB colours, gradient geometry, noise scale/octaves, number of
clutter shapes and an integer seed). Rendering is a pure function of these
parameters and the output size: the same row renders to byte-identical
pixels every time, and all geometry lives in normalised image coordinates, so
a background rendered at 64, 128 or 256 px shows the same picture.

Kinds
-----
0 ``gradient``       linear or radial blend between ``color0`` and ``color1``
1 ``noise``          gradient (Perlin) noise, 1-3 octaves, mapping
                     ``color0`` -> ``color1``
2 ``clutter``        a gradient overlaid with ``n_shapes`` random ellipses,
                     rotated rectangles and thick lines (random colours from ``seed``)
3 ``noise_clutter``  clutter shapes over a noise texture

Clutter shape geometry and colours and the noise lattice are derived from
``seed`` with an integer hash inside the kernel (no dependence on numpy's RNG
implementation), so a stored ``BackgroundParams`` re-renders identically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from numba import njit

from handlatent.synth.render import _run_chunks

__all__ = [
    "BackgroundParams",
    "FACTOR_NAMES",
    "KIND_NAMES",
    "sample_backgrounds",
    "render_backgrounds",
]

KIND_GRADIENT, KIND_NOISE, KIND_CLUTTER, KIND_NOISE_CLUTTER = 0, 1, 2, 3
KIND_NAMES: tuple[str, ...] = ("gradient", "noise", "clutter", "noise_clutter")

FACTOR_NAMES: tuple[str, ...] = (
    "kind",
    "color0_r", "color0_g", "color0_b",
    "color1_r", "color1_g", "color1_b",
    "radial",
    "angle_cos", "angle_sin",
    "center_x", "center_y",
    "grad_scale",
    "noise_scale",
    "octaves",
    "n_shapes",
    "seed_frac",
)

MAX_OCTAVES = 3
MAX_SHAPES = 32

_FIELDS = {
    # name: (dtype, trailing shape)
    "kind": (np.int32, ()),
    "color0": (np.float32, (3,)),
    "color1": (np.float32, (3,)),
    "radial": (np.int32, ()),
    "angle": (np.float32, ()),
    "center": (np.float32, (2,)),
    "grad_scale": (np.float32, ()),
    "noise_scale": (np.float32, ()),
    "octaves": (np.int32, ()),
    "n_shapes": (np.int32, ()),
    "seed": (np.int64, ()),
}


@dataclass
class BackgroundParams:
    """Batched background parameters, one row per image.

    kind        (N,) int32    0 gradient, 1 noise, 2 clutter, 3 noise + clutter
    color0      (N, 3) float32 sRGB in [0, 1]: gradient start / noise low colour
    color1      (N, 3) float32 sRGB in [0, 1]: gradient end / noise high colour
    radial      (N,) int32    gradient type: 0 linear, 1 radial
    angle       (N,) float32  linear gradient direction (radians, image x right / y down)
    center      (N, 2) float32 radial gradient centre (x, y) in image fractions
    grad_scale  (N,) float32  gradient steepness: colour parameter changes by
                              grad_scale per image width (linear) / per image
                              width of distance from the centre (radial)
    noise_scale (N,) float32  noise lattice cells across the image (base octave)
    octaves     (N,) int32    noise octaves, 1..3
    n_shapes    (N,) int32    clutter shapes, 0..32 (ignored for kinds 0 and 1)
    seed        (N,) int64    texture / clutter seed, 0 <= seed < 2**32
    """

    kind: np.ndarray
    color0: np.ndarray
    color1: np.ndarray
    radial: np.ndarray
    angle: np.ndarray
    center: np.ndarray
    grad_scale: np.ndarray
    noise_scale: np.ndarray
    octaves: np.ndarray
    n_shapes: np.ndarray
    seed: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for f in fields(self):
            dtype, tail = _FIELDS[f.name]
            a = np.asarray(getattr(self, f.name))
            if a.ndim != 1 + len(tail) or a.shape[1:] != tail:
                want = "(N" + "".join(", " + str(t) for t in tail) + ")"
                raise ValueError(f"BackgroundParams.{f.name}: expected shape {want}, got {a.shape}")
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ValueError(f"BackgroundParams.{f.name}: expected {n} rows, got {a.shape[0]}")
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise ValueError(f"BackgroundParams.{f.name}: contains NaN or inf")
            object.__setattr__(self, f.name, np.ascontiguousarray(a, dtype=dtype))
        if ((self.kind < 0) | (self.kind >= len(KIND_NAMES))).any():
            raise ValueError(f"BackgroundParams.kind: values must be in 0..{len(KIND_NAMES) - 1}")
        if ((self.octaves < 1) | (self.octaves > MAX_OCTAVES)).any():
            raise ValueError(f"BackgroundParams.octaves: values must be in 1..{MAX_OCTAVES}")
        if ((self.n_shapes < 0) | (self.n_shapes > MAX_SHAPES)).any():
            raise ValueError(f"BackgroundParams.n_shapes: values must be in 0..{MAX_SHAPES}")
        if ((self.seed < 0) | (self.seed >= 2**32)).any():
            raise ValueError("BackgroundParams.seed: values must be in [0, 2**32)")
        if (self.noise_scale <= 0).any():
            raise ValueError("BackgroundParams.noise_scale: values must be > 0")

    # -- batching ---------------------------------------------------------
    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def take(self, idx) -> "BackgroundParams":
        """Copy of rows ``idx`` (int, slice, index array or boolean mask); always batched."""
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        return BackgroundParams(**{f.name: np.array(getattr(self, f.name)[idx]) for f in fields(self)})

    __getitem__ = take

    @classmethod
    def concat(cls, parts) -> "BackgroundParams":
        parts = list(parts)
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def to_dict(self, prefix: str = "bg_") -> dict[str, np.ndarray]:
        """Flat dict of arrays (e.g. for ``np.savez``); inverse of :meth:`from_dict`."""
        return {prefix + f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d, prefix: str = "bg_") -> "BackgroundParams":
        return cls(**{f.name: np.asarray(d[prefix + f.name]) for f in fields(cls)})

    def factors(self) -> np.ndarray:
        """(N, len(FACTOR_NAMES)) float32 numeric summary, see FACTOR_NAMES."""
        return np.column_stack([
            self.kind.astype(np.float32),
            self.color0,
            self.color1,
            self.radial.astype(np.float32),
            np.cos(self.angle),
            np.sin(self.angle),
            self.center,
            self.grad_scale,
            self.noise_scale,
            self.octaves.astype(np.float32),
            self.n_shapes.astype(np.float32),
            (self.seed.astype(np.float64) / 2.0**32).astype(np.float32),
        ]).astype(np.float32)


def _hsv_to_rgb(h, s, v):
    h = (h % 1.0) * 6.0
    i = np.floor(h).astype(int) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], -1)


def sample_backgrounds(rng: np.random.Generator, n: int, kind_probs=(0.2, 0.3, 0.3, 0.2)) -> BackgroundParams:
    """Draw ``n`` random background parameter rows with ``rng``.

    ``kind_probs`` gives the probabilities of kinds 0..3 (gradient, noise,
    clutter, noise + clutter).
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n: must be >= 0, got {n}")
    kind = rng.choice(len(KIND_NAMES), size=n, p=np.asarray(kind_probs, float) / np.sum(kind_probs))
    h0 = rng.uniform(0, 1, n)
    v0 = rng.uniform(0.08, 0.95, n)
    c0 = _hsv_to_rgb(h0, rng.uniform(0.0, 0.85, n), v0)
    # second colour: related hue most of the time, sometimes complementary; its
    # value differs from the first by 0.15..0.6 so textures keep some contrast
    h1 = h0 + np.where(rng.uniform(size=n) < 0.3, 0.5, rng.normal(0, 0.12, n))
    dv = rng.uniform(0.15, 0.6, n)
    v1 = np.where((v0 + dv <= 0.97) & ((v0 - dv < 0.05) | (rng.uniform(size=n) < 0.5)), v0 + dv, v0 - dv)
    c1 = _hsv_to_rgb(h1, rng.uniform(0.0, 0.85, n), np.clip(v1, 0.03, 0.97))
    return BackgroundParams(
        kind=kind,
        color0=c0,
        color1=c1,
        radial=(rng.uniform(size=n) < 0.35).astype(np.int32),
        angle=rng.uniform(-np.pi, np.pi, n),
        center=rng.uniform(0.0, 1.0, (n, 2)),
        grad_scale=rng.uniform(0.3, 1.6, n),
        noise_scale=np.exp(rng.uniform(np.log(1.5), np.log(10.0), n)),
        octaves=rng.integers(1, MAX_OCTAVES + 1, n),
        n_shapes=rng.integers(4, 25, n),
        seed=rng.integers(0, 2**32, n, dtype=np.int64),
    )


# ---------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------

_M32 = 0xFFFFFFFF


@njit("float64(int64, int64, int64)", cache=True, error_model="numpy")
def _hash3(seed, a, b):
    """Deterministic 32-bit hash of three integers -> float in [0, 1).

    Every product is (< 2**32) * (< 2**31), so int64 arithmetic never overflows.
    """
    h = (seed & _M32) ^ (((a & _M32) * 0x27D4EB2D) & _M32)
    h = (h * 0x7FEB352D) & _M32
    h ^= h >> 15
    h ^= ((b & _M32) * 0x165667B1) & _M32
    h = (h * 0x7FEB352D) & _M32
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & _M32
    h ^= h >> 16
    return h * (1.0 / 4294967296.0)


@njit("void(float64, float64, float64, float64[::1])", cache=True, error_model="numpy")
def _hsv(h, s, v, out):
    h = (h - math.floor(h)) * 6.0
    i = int(h)
    f = h - i
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    if i == 0:
        out[0], out[1], out[2] = v, t, p
    elif i == 1:
        out[0], out[1], out[2] = q, v, p
    elif i == 2:
        out[0], out[1], out[2] = p, v, t
    elif i == 3:
        out[0], out[1], out[2] = p, q, v
    elif i == 4:
        out[0], out[1], out[2] = t, p, v
    else:
        out[0], out[1], out[2] = v, p, q


@njit(cache=True, error_model="numpy")
def _render_one(n, kind, c0, c1, radial, angle, center, grad_scale, noise_scale, octaves,
                n_shapes, seed, S, out, acc, lat, col, wts, frc, idx, img):
    sd = seed[n]
    k = kind[n]
    inv = 1.0 / S
    # ---- base field t in [0, 1] (gradient or noise) -----------------------
    if k == 0 or k == 2:
        gs = grad_scale[n]
        if radial[n] == 1:
            cx = center[n, 0]
            cy = center[n, 1]
            for y in range(S):
                v = (y + 0.5) * inv - cy
                for x in range(S):
                    u = (x + 0.5) * inv - cx
                    acc[y, x] = math.sqrt(u * u + v * v) * gs
        else:
            ca = math.cos(angle[n]) * gs
            sa = math.sin(angle[n]) * gs
            for y in range(S):
                v = (y + 0.5) * inv - 0.5
                for x in range(S):
                    acc[y, x] = 0.5 + ((x + 0.5) * inv - 0.5) * ca + v * sa
    else:
        for y in range(S):
            for x in range(S):
                acc[y, x] = 0.0
        amp = 1.0
        tot = 0.0
        for o in range(octaves[n]):
            freq = noise_scale[n] * (2.0 ** o)
            nc = int(math.ceil(freq)) + 2
            # gradient (Perlin) noise: random unit gradient per lattice vertex
            for i in range(nc):
                for j in range(nc):
                    a = _hash3(sd, o * 4096 + i, j) * (2.0 * math.pi)
                    lat[0, i, j] = math.cos(a)
                    lat[1, i, j] = math.sin(a)
            # per-row / per-column lattice cell, offset and quintic weight (separable)
            ox = _hash3(sd, o + 7919, 1)  # random lattice phase per octave
            oy = _hash3(sd, o + 7919, 2)
            for x in range(S):
                p = (x + 0.5) * inv * freq + ox
                c = int(math.floor(p))
                fr = p - c
                idx[0, x] = c
                frc[0, x] = fr
                wts[0, x] = fr * fr * fr * (fr * (fr * 6.0 - 15.0) + 10.0)
            for y in range(S):
                p = (y + 0.5) * inv * freq + oy
                c = int(math.floor(p))
                fr = p - c
                idx[1, y] = c
                frc[1, y] = fr
                wts[1, y] = fr * fr * fr * (fr * (fr * 6.0 - 15.0) + 10.0)
            for y in range(S):
                iy = idx[1, y]
                fy = frc[1, y]
                fy1 = fy - 1.0
                wy = wts[1, y] * amp
                wy1 = amp - wy
                for x in range(S):
                    ix = idx[0, x]
                    fx = frc[0, x]
                    fx1 = fx - 1.0
                    wx = wts[0, x]
                    n00 = lat[0, iy, ix] * fx + lat[1, iy, ix] * fy
                    n10 = lat[0, iy, ix + 1] * fx1 + lat[1, iy, ix + 1] * fy
                    n01 = lat[0, iy + 1, ix] * fx + lat[1, iy + 1, ix] * fy1
                    n11 = lat[0, iy + 1, ix + 1] * fx1 + lat[1, iy + 1, ix + 1] * fy1
                    a = n00 + wx * (n10 - n00)
                    b = n01 + wx * (n11 - n01)
                    acc[y, x] += wy1 * a + wy * b
            tot += amp
            amp *= 0.5
        # normalise and stretch: 2-D Perlin noise lies in about [-0.7, 0.7] but
        # mostly within +-0.3
        g = 1.5 / tot
        for y in range(S):
            for x in range(S):
                acc[y, x] = 0.5 + acc[y, x] * g
    # ---- base colour --------------------------------------------------------
    # (array loads hoisted into locals: numba gives LLVM no aliasing information)
    if k < 2:
        a0 = 255.0 * c0[n, 0] + 0.5
        a1 = 255.0 * c0[n, 1] + 0.5
        a2 = 255.0 * c0[n, 2] + 0.5
        d0 = 255.0 * c1[n, 0] + 0.5 - a0
        d1 = 255.0 * c1[n, 1] + 0.5 - a1
        d2 = 255.0 * c1[n, 2] + 0.5 - a2
        for y in range(S):
            for x in range(S):
                t = min(max(acc[y, x], 0.0), 1.0)
                img[n, y, x, 0] = np.uint8(int(a0 + t * d0))
                img[n, y, x, 1] = np.uint8(int(a1 + t * d1))
                img[n, y, x, 2] = np.uint8(int(a2 + t * d2))
        return
    a0 = c0[n, 0]
    a1 = c0[n, 1]
    a2 = c0[n, 2]
    d0 = c1[n, 0] - a0
    d1 = c1[n, 1] - a1
    d2 = c1[n, 2] - a2
    for y in range(S):
        for x in range(S):
            t = min(max(acc[y, x], 0.0), 1.0)
            out[y, x, 0] = a0 + t * d0
            out[y, x, 1] = a1 + t * d1
            out[y, x, 2] = a2 + t * d2
    # ---- clutter shapes --------------------------------------------------------
    for sh in range(n_shapes[n]):
        key = 100000 + sh
        typ = int(_hash3(sd, key, 0) * 3.0)
        px = (_hash3(sd, key, 1) * 1.3 - 0.15) * S
        py = (_hash3(sd, key, 2) * 1.3 - 0.15) * S
        size = (0.03 + 0.30 * _hash3(sd, key, 3) ** 1.5) * S
        asp = 0.25 + 0.75 * _hash3(sd, key, 4)
        rot = _hash3(sd, key, 5) * math.pi
        _hsv(_hash3(sd, key, 6), 0.9 * _hash3(sd, key, 7), 0.1 + 0.85 * _hash3(sd, key, 8), col)
        opa = 0.55 + 0.45 * _hash3(sd, key, 9)
        k0 = col[0]
        k1 = col[1]
        k2 = col[2]
        cr = math.cos(rot)
        sr = math.sin(rot)
        a = size
        if typ == 2:  # thick line: half length a, half width b
            b = max(0.6, size * 0.06 * (0.3 + asp))
            ea = a + b + 1.0
        else:
            b = size * asp
            ea = a * (1.0 + 0.5 / b) + 1.0 if typ == 0 else a + 1.0
        eb = b + 1.0
        ia = 1.0 / a
        ib = 1.0 / b
        # rows covered by the rotated bounding rectangle |lx| <= ea, |ly| <= eb
        hy = abs(sr) * ea + abs(cr) * eb
        y0 = max(0, int(math.floor(py - 0.5 - hy)))
        y1 = min(S - 1, int(math.ceil(py - 0.5 + hy)))
        for y in range(y0, y1 + 1):
            dy = y + 0.5 - py
            # x-span: intersection of the slabs |lx| <= ea and |ly| <= eb, where
            # lx = dx*cr + dy*sr and ly = -dx*sr + dy*cr
            lo = -1e30
            hi = 1e30
            if abs(cr) > 1e-9:
                u0 = (-ea - dy * sr) / cr
                u1 = (ea - dy * sr) / cr
                lo = max(lo, min(u0, u1))
                hi = min(hi, max(u0, u1))
            elif abs(dy * sr) > ea:
                continue
            if abs(sr) > 1e-9:
                u0 = (dy * cr - eb) / sr
                u1 = (dy * cr + eb) / sr
                lo = max(lo, min(u0, u1))
                hi = min(hi, max(u0, u1))
            elif abs(dy * cr) > eb:
                continue
            x0 = max(0, int(math.ceil(px - 0.5 + lo)))
            x1 = min(S - 1, int(math.floor(px - 0.5 + hi)))
            for x in range(x0, x1 + 1):
                dx = x + 0.5 - px
                lx = dx * cr + dy * sr
                ly = -dx * sr + dy * cr
                if typ == 0:  # ellipse (scaled-distance approximation of the SDF)
                    qa = lx * ia
                    qb = ly * ib
                    d = (math.sqrt(qa * qa + qb * qb) - 1.0) * b
                elif typ == 1:  # rectangle
                    qx = abs(lx) - a
                    qy = abs(ly) - b
                    if qx > 0.0 and qy > 0.0:
                        d = math.sqrt(qx * qx + qy * qy)
                    else:
                        d = max(qx, qy)
                else:  # line with round caps
                    qx = abs(lx) - a
                    if qx < 0.0:
                        qx = 0.0
                    d = math.sqrt(qx * qx + ly * ly) - b
                cov = 0.5 - d
                if cov <= 0.0:
                    continue
                if cov > 1.0:
                    cov = 1.0
                cov *= opa
                out[y, x, 0] += cov * (k0 - out[y, x, 0])
                out[y, x, 1] += cov * (k1 - out[y, x, 1])
                out[y, x, 2] += cov * (k2 - out[y, x, 2])
    for y in range(S):
        for x in range(S):
            for ch in range(3):
                img[n, y, x, ch] = np.uint8(int(min(max(out[y, x, ch], 0.0), 1.0) * 255.0 + 0.5))


@njit(cache=True, nogil=True, error_model="numpy")
def _render_chunk(n0, n1, kind, c0, c1, radial, angle, center, grad_scale, noise_scale, octaves,
                  n_shapes, seed, S, img):
    out = np.empty((S, S, 3), np.float32)
    acc = np.empty((S, S), np.float32)
    mx = 4
    for n in range(n0, n1):
        mx = max(mx, int(math.ceil(noise_scale[n])) * (2 ** (MAX_OCTAVES - 1)) + 4)
    lat = np.empty((2, mx, mx), np.float64)
    frc = np.empty((2, S), np.float64)
    col = np.empty(3, np.float64)
    wts = np.empty((2, S), np.float64)
    idx = np.empty((2, S), np.int64)
    for n in range(n0, n1):
        _render_one(n, kind, c0, c1, radial, angle, center, grad_scale, noise_scale, octaves,
                    n_shapes, seed, S, out, acc, lat, col, wts, frc, idx, img)


def render_backgrounds(params: BackgroundParams, size: int, *, num_threads: int | None = None) -> np.ndarray:
    """Render ``params`` to (N, size, size, 3) uint8 sRGB images (deterministic;
    ``num_threads`` as in :func:`handlatent.synth.render.render_capsules`)."""
    if not isinstance(params, BackgroundParams):
        raise ValueError(f"params: expected BackgroundParams, got {type(params).__name__}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size: expected a positive int, got {size!r}")
    S = int(size)
    N = len(params)
    img = np.empty((N, S, S, 3), np.uint8)
    if N == 0:
        return img
    p = params
    _run_chunks(_render_chunk, N, num_threads, p.kind, p.color0, p.color1, p.radial, p.angle, p.center,
                p.grad_scale, p.noise_scale, p.octaves, p.n_shapes, p.seed, S, img)
    return img

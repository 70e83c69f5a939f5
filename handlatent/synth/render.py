"""CPU rasterizer for hands made of shaded round cones ("tapered capsules").

Rendering model (see ``docs/renderer.md``):

* Every capsule is projected to the image (pinhole ``K``); in screen space its
  silhouette is the exact 2-D "uneven capsule" (convex hull of the two end
  discs, radii ``f * r / z`` pixels, ``f = sqrt(fx * fy)``).
* For a pixel inside, the *generating sphere* of the round cone (the axis
  sphere whose disc is tangent to the silhouette along the pixel's normal
  direction) gives the surface: ``depth = z_c - r_c * sqrt(1 - rho^2)`` and the
  normal ``(o / R, -sqrt(1 - rho^2))`` (``o`` = pixel offset from the sphere
  centre, ``R`` its pixel radius, ``rho = |o| / R``).  Depth and metric radius
  are interpolated linearly along the projected axis.
* Capsules are drawn front to back into a depth-tested two-layer fragment
  buffer: the nearest and (where the nearest only partly covers the pixel) the
  second nearest fragment are kept, so internal edges (finger over palm) are
  anti-aliased, while the coverage against the background comes from the
  union signed distance of all capsules (``alpha = clamp(0.5 - sdf, 0, 1)``,
  a 1 px ramp).  Surfaces meeting within ``blend`` metres are merged smoothly
  (blended normal and albedo, smooth-min depth) so overlapping palm capsules
  and joints read as one soft volume instead of intersecting tubes.
* Skin shading in linear light: wrapped (sub-surface-like, red-biased) Lambert
  diffuse + ambient, a mild Blinn-Phong sheen and a warm rim/translucency term
  that grows when the light is behind the hand (optionally darkened by a
  screen-space ambient occlusion, off by default); sRGB in, sRGB out.
* The returned depth map is *not* blended: it is the exact minimum over the
  capsules whose silhouette covers the pixel centre.

Pixel convention: pixel ``(row i, column j)`` is sampled at continuous image
coordinates ``(u, v) = (j + pixel_offset, i + pixel_offset)``; the default
``pixel_offset = 0.0`` is the OpenCV convention (pixel centres at integers, a
keypoint projected with ``K`` falls into pixel ``round(u), round(v)``).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

__all__ = ["render_capsules", "srgb_to_linear", "linear_to_srgb"]


# ---------------------------------------------------------------------------
# threading: serial nogil numba kernels over image chunks on a thread pool.
# (A prange wrapper costs ~3 s of extra cold compile per kernel; the chunks are
# independent, so the output never depends on the number of threads.)
# ---------------------------------------------------------------------------

_EXECUTORS: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (pid, threads) -> pool; fork-safe
_EXECUTORS_LOCK = threading.Lock()


def _n_threads(num_threads: int | None) -> int:
    if num_threads is None:
        return max(1, int(numba.config.NUMBA_NUM_THREADS))
    return max(1, int(num_threads))


def _run_chunks(fn, n: int, num_threads: int | None, *args) -> None:
    """Call ``fn(n0, n1, *args)`` on ~4 chunks of images per thread."""
    nt = min(_n_threads(num_threads), n)
    if nt <= 1:
        if n > 0:
            fn(0, n, *args)
        return
    per = -(-n // min(n, 4 * nt))
    key = (os.getpid(), nt)  # a pool inherited through fork() has no threads: make a new one
    with _EXECUTORS_LOCK:
        ex = _EXECUTORS.get(key)
        if ex is None:
            ex = _EXECUTORS[key] = ThreadPoolExecutor(nt, thread_name_prefix="handlatent-synth")
    futures = [ex.submit(fn, a, min(n, a + per), *args) for a in range(0, n, per)]
    for fut in futures:
        fut.result()

# ---------------------------------------------------------------------------
# colour helpers
# ---------------------------------------------------------------------------

_LIN_LUT_SIZE = 16384


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Exact sRGB -> linear transfer for values in [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Exact linear -> sRGB transfer for values in [0, 1]."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1.0 / 2.4) - 0.055)


_SRGB8_TO_LIN = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_LIN_TO_SRGB8 = np.round(
    linear_to_srgb(np.arange(_LIN_LUT_SIZE) / (_LIN_LUT_SIZE - 1)) * 255.0
).astype(np.uint8)

# shading constants (linear light); module-level floats are compile-time constants in numba
_WRAP_R, _WRAP_G, _WRAP_B = 0.42, 0.22, 0.16  # per-channel diffuse wrap: red light "bleeds" past the terminator
_SPEC_K = 0.075                              # Blinn sheen strength (white)
_RIM_K = 0.20                                # rim / translucency strength
_RIM_R, _RIM_G, _RIM_B = 1.0, 0.42, 0.30     # rim tint relative to albedo (blood-red scattering)
_AO_PAD = 24  # max AO ring radius in pixels
_AO_DIRS = np.array([[np.cos(a), np.sin(a)] for a in np.arange(8) * np.pi / 4 + np.pi / 8])


# ---------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------


# Per-pixel fragment buffer, one 64-byte record per pixel (float32):
# [0..6] front fragment (depth, coverage, nx, ny, albedo r, g, b; linear light)
# [7..13] second fragment, [14] union signed distance (px), [15] depth of the
# nearest fragment that covers the pixel centre.
_NF = 16
_SDF = 14
_ZC = 15


@njit(cache=True, error_model="numpy")
def _raster_cone(Ax, Ay, ra, za, r0, Bx, By, rb, zb, r1, cr, cg, cb, S, buf, blend):
    """Rasterise one round cone (screen-space generating-sphere model).

    Ax, Ay, Bx, By: projected end points in pixel-index coordinates; ra, rb:
    pixel radii; za, zb: end depths (m); r0, r1: metric radii; cr, cg, cb:
    linear albedo. Requires |ra - rb| < |B - A| or a degenerate (|B - A| = 0)
    segment, i.e. a sphere.
    """
    Dx = Bx - Ax
    Dy = By - Ay
    L = math.sqrt(Dx * Dx + Dy * Dy)
    if L > 1e-9:
        ux = Dx / L
        uy = Dy / L
        invL = 1.0 / L
        sphi = (ra - rb) / L
    else:
        L = 0.0
        ux = 1.0
        uy = 0.0
        invL = 0.0
        sphi = 0.0
        rb = ra
    cphi = math.sqrt(max(1.0 - sphi * sphi, 1e-12))
    tphi = sphi / cphi
    Lc = L * cphi
    wx = -uy
    wy = ux
    R = max(ra, rb) + 0.5
    ra_m = (ra + 0.5) * (ra + 0.5)
    rb_m = (rb + 0.5) * (rb + 0.5)
    dzt = (zb - za) * invL
    drt = (r1 - r0) * invL
    inv_blend = 1.0 / blend if blend > 0.0 else 0.0
    # (clamp in float before converting: far off-screen points must not overflow int64)
    ymin = int(math.ceil(min(max(min(Ay, By) - R, -1.0), S + 1.0)))
    ymax = int(math.floor(max(min(max(Ay, By) + R, S + 1.0), -1.0)))
    ymin = max(0, ymin)
    ymax = min(S - 1, ymax)
    for y in range(ymin, ymax + 1):
        fy = float(y)
        # x-span: the segment clipped to the row band, widened by R ...
        if abs(Dy) > 1e-9:
            ta = (fy - R - Ay) / Dy
            tb = (fy + R - Ay) / Dy
            t0 = max(0.0, min(ta, tb))
            t1 = min(1.0, max(ta, tb))
            if t0 > t1:
                continue
        else:
            t0 = 0.0
            t1 = 1.0
        xa = Ax + t0 * Dx
        xb = Ax + t1 * Dx
        xlo = min(xa, xb) - R
        xhi = max(xa, xb) + R
        # ... intersected with the slab |distance to the axis line| <= R
        if abs(wx) > 1e-6:
            xc = Ax - (fy - Ay) * wy / wx
            hw = R / abs(wx)
            xlo = max(xlo, xc - hw)
            xhi = min(xhi, xc + hw)
        jx0 = max(0, int(math.ceil(min(max(xlo, -1.0), S + 1.0))))
        jx1 = min(S - 1, int(math.floor(max(min(xhi, S + 1.0), -1.0))))
        if jx0 > jx1:
            continue
        dxp = jx0 - Ax
        dyp = fy - Ay
        s0 = dxp * ux + dyp * uy
        w0 = dxp * wx + dyp * wy
        for x in range(jx0, jx1 + 1):
            s = s0 + (x - jx0) * ux
            w = w0 + (x - jx0) * wx
            aw = abs(w)
            k = cphi * s - sphi * aw
            if k < 0.0:
                d2 = s * s + w * w
                if d2 >= ra_m:
                    continue
                dist = math.sqrt(np.float32(d2)) - ra
                sc = 0.0
                Rp = ra
            elif k > Lc:
                e = s - L
                d2 = e * e + w * w
                if d2 >= rb_m:
                    continue
                dist = math.sqrt(np.float32(d2)) - rb
                sc = L
                Rp = rb
            else:
                dist = cphi * aw + sphi * s - ra
                if dist >= 0.5:
                    continue
                sc = s - aw * tphi
                Rp = ra - sphi * sc
            if dist < buf[y, x, _SDF]:
                buf[y, x, _SDF] = dist
            # generating sphere: centre at sc along the axis, pixel radius Rp,
            # metric radius Rm, centre depth zcen
            zcen = za + dzt * sc
            Rm = r0 + drt * sc
            zmin = zcen - Rm
            if (zmin >= buf[y, x, 0] + blend and zmin > buf[y, x, _ZC]
                    and (buf[y, x, 1] >= 1.0 or zmin > buf[y, x, 7])):
                continue  # early depth test: cannot become visible, blend or cover
            oa = s - sc
            ox = oa * ux + w * wx
            oy = oa * uy + w * wy
            o2 = ox * ox + oy * oy
            # (float32 division / square roots: twice the throughput of float64)
            if o2 < Rp * Rp:
                iR = np.float32(1.0) / np.float32(Rp)
                nx = ox * iR
                ny = oy * iR
                h = math.sqrt(np.float32(1.0 - nx * nx - ny * ny))
            else:
                h = 0.0
                on = math.sqrt(np.float32(o2))
                if on > 0.0:
                    iR = np.float32(1.0) / on
                    nx = ox * iR
                    ny = oy * iR
                else:
                    nx = 0.0
                    ny = 0.0
            depth = zcen - Rm * h
            cov = 0.5 - dist
            if cov > 1.0:
                cov = 1.0
            if dist <= 0.0 and depth < buf[y, x, _ZC]:
                buf[y, x, _ZC] = depth
            zo = buf[y, x, 0]
            if abs(depth - zo) < blend:
                # smooth union with the front fragment: blend normal and albedo
                # (weighted by depth proximity and coverage), smooth-min depth
                hb = 0.5 + 0.5 * (zo - depth) * inv_blend
                ca = buf[y, x, 1]
                wn = hb * cov
                # (both weights can underflow float32 at a silhouette's edge: 0 / 0 would be a
                # NaN albedo, and a NaN colour became a wild table index that crashed)
                den = np.float32(wn + (1.0 - hb) * ca)
                wn = np.float32(wn) / den if den > 0.0 else hb
                ox1 = buf[y, x, 2]
                oy1 = buf[y, x, 3]
                oz2 = 1.0 - ox1 * ox1 - oy1 * oy1
                oz1 = -math.sqrt(oz2) if oz2 > 0.0 else 0.0
                mx = ox1 + wn * (nx - ox1)
                my = oy1 + wn * (ny - oy1)
                mz = oz1 + wn * (-h - oz1)
                mn = mx * mx + my * my + mz * mz
                if mn > 1e-18:
                    mn = np.float32(1.0) / math.sqrt(np.float32(mn))
                    buf[y, x, 2] = mx * mn
                    buf[y, x, 3] = my * mn
                buf[y, x, 0] = zo + hb * (depth - zo) - blend * 0.25 * hb * (1.0 - hb)
                if cov > ca:
                    buf[y, x, 1] = cov
                buf[y, x, 4] += wn * (cr - buf[y, x, 4])
                buf[y, x, 5] += wn * (cg - buf[y, x, 5])
                buf[y, x, 6] += wn * (cb - buf[y, x, 6])
            elif depth < zo:
                for q in range(7):
                    buf[y, x, 7 + q] = buf[y, x, q]
                buf[y, x, 0] = depth
                buf[y, x, 1] = cov
                buf[y, x, 2] = nx
                buf[y, x, 3] = ny
                buf[y, x, 4] = cr
                buf[y, x, 5] = cg
                buf[y, x, 6] = cb
            elif depth < buf[y, x, 7] and buf[y, x, 1] < 1.0:  # 2nd layer only shows through a partial 1st
                buf[y, x, 7] = depth
                buf[y, x, 8] = cov
                buf[y, x, 9] = nx
                buf[y, x, 10] = ny
                buf[y, x, 11] = cr
                buf[y, x, 12] = cg
                buf[y, x, 13] = cb


@njit(cache=True, error_model="numpy")
def _shade(nx, ny, ar, ag, ab, lx, ly, lz, hx, hy, hz, amb, ao):
    """Skin shading of one fragment in linear light -> (r, g, b)."""
    nz2 = 1.0 - nx * nx - ny * ny
    nz = -math.sqrt(nz2) if nz2 > 0.0 else 0.0
    ndl = nx * lx + ny * ly + nz * lz
    # Blinn sheen, exponent 32 by repeated squaring, faded in at the terminator
    ndh = nx * hx + ny * hy + nz * hz
    spec = 0.0
    if ndh > 0.0 and ndl > 0.0:
        p = ndh * ndh
        p = p * p
        p = p * p
        p = p * p
        p = p * p
        spec = _SPEC_K * p * min(1.0, 4.0 * ndl) * ao
    # rim / translucency (view direction (0, 0, -1), so n.v = -nz); stronger
    # when the light comes from behind the hand
    f = 1.0 + nz
    rim = f * f * f * _RIM_K * (0.35 + 0.65 * max(0.0, lz))
    kd = (1.0 - amb) * (0.5 + 0.5 * ao)
    ka = amb * ao
    dr = max(0.0, (ndl + _WRAP_R) * (1.0 / (1.0 + _WRAP_R)))
    dg = max(0.0, (ndl + _WRAP_G) * (1.0 / (1.0 + _WRAP_G)))
    db = max(0.0, (ndl + _WRAP_B) * (1.0 / (1.0 + _WRAP_B)))
    return (ar * (ka + kd * dr + rim * _RIM_R) + spec,
            ag * (ka + kd * dg + rim * _RIM_G) + spec,
            ab * (ka + kd * db + rim * _RIM_B) + spec)


@njit(cache=True, nogil=True, error_model="numpy")
def _render_chunk(n0, n1, p0, p1, radius, alb_lin, K, light, ambient, bg, pix_off,
                  srgb2lin, lin2srgb, blend, ao_k, ao_r, img, depth):
    """Render images n0..n1-1 (serial; per-thread scratch buffers)."""
    S = bg.shape[1]
    C = p0.shape[1]
    M1 = lin2srgb.shape[0] - 1
    inf = np.float32(np.inf)
    iao = 1.0 / ao_r
    iao4 = iao / 4.0
    buf = np.empty((S, S, _NF), np.float32)
    prm = np.empty((C, 10), np.float64)
    zkey = np.empty(C, np.float64)
    order = np.empty(C, np.int64)
    # depth plane for AO with an inf border of _AO_PAD pixels (no bounds checks on taps)
    zs = S + 2 * _AO_PAD if ao_k > 0.0 else 1
    zpl = np.full((zs, zs), inf, np.float32)
    tap = np.empty((8, 2), np.int64)
    for n in range(n0, n1):
        # copy the background, clear the depth
        for y in range(S):
            for x in range(S):
                img[n, y, x, 0] = bg[n, y, x, 0]
                img[n, y, x, 1] = bg[n, y, x, 1]
                img[n, y, x, 2] = bg[n, y, x, 2]
                depth[n, y, x] = inf
        if C == 0:
            continue
        fx = K[n, 0, 0]
        fy = K[n, 1, 1]
        skew = K[n, 0, 1]
        cx = K[n, 0, 2] - pix_off
        cy = K[n, 1, 2] - pix_off
        f = math.sqrt(fx * fy)
        if_ = 1.0 / f
        # project the capsules, union bounding box
        bx0 = 1e30
        by0 = 1e30
        bx1 = -1e30
        by1 = -1e30
        zsum = 0.0
        for c in range(C):
            za = p0[n, c, 2]
            zb = p1[n, c, 2]
            Ax = (fx * p0[n, c, 0] + skew * p0[n, c, 1]) / za + cx
            Ay = fy * p0[n, c, 1] / za + cy
            Bx = (fx * p1[n, c, 0] + skew * p1[n, c, 1]) / zb + cx
            By = fy * p1[n, c, 1] / zb + cy
            ra = f * radius[n, c, 0] / za
            rb = f * radius[n, c, 1] / zb
            zsum += za + zb
            prm[c, 0] = Ax
            prm[c, 1] = Ay
            prm[c, 2] = ra
            prm[c, 3] = za
            prm[c, 4] = radius[n, c, 0]
            prm[c, 5] = Bx
            prm[c, 6] = By
            prm[c, 7] = rb
            prm[c, 8] = zb
            prm[c, 9] = radius[n, c, 1]
            bx0 = min(bx0, Ax - ra, Bx - rb)
            bx1 = max(bx1, Ax + ra, Bx + rb)
            by0 = min(by0, Ay - ra, By - rb)
            by1 = max(by1, Ay + ra, By + rb)
        X0 = max(0, int(math.floor(max(bx0, -1.0) - 1.0)))
        X1 = min(S - 1, int(math.ceil(min(bx1, S + 1.0) + 1.0)))
        Y0 = max(0, int(math.floor(max(by0, -1.0) - 1.0)))
        Y1 = min(S - 1, int(math.ceil(min(by1, S + 1.0) + 1.0)))
        if X0 > X1 or Y0 > Y1:
            continue
        for y in range(Y0, Y1 + 1):
            for x in range(X0, X1 + 1):
                buf[y, x, 0] = inf
                buf[y, x, 7] = inf
                buf[y, x, _SDF] = 1.0
                buf[y, x, _ZC] = inf
        # front-to-back order (stable sort on the nearest possible depth), so the
        # early depth test in _raster_cone rejects most occluded fragments
        for c in range(C):
            zkey[c] = min(prm[c, 3] - prm[c, 4], prm[c, 8] - prm[c, 9])
            order[c] = c
        for c in range(1, C):  # insertion sort (stable; C is small)
            o = order[c]
            kz = zkey[o]
            j = c - 1
            while j >= 0 and zkey[order[j]] > kz:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = o
        for ci in range(C):
            c = order[ci]
            Ax = prm[c, 0]
            Ay = prm[c, 1]
            ra = prm[c, 2]
            Bx = prm[c, 5]
            By = prm[c, 6]
            rb = prm[c, 7]
            cr = alb_lin[n, c, 0]
            cg = alb_lin[n, c, 1]
            cb = alb_lin[n, c, 2]
            dx = Bx - Ax
            dy = By - Ay
            if math.sqrt(dx * dx + dy * dy) > abs(ra - rb) + 1e-6:
                _raster_cone(Ax, Ay, ra, prm[c, 3], prm[c, 4], Bx, By, rb, prm[c, 8], prm[c, 9],
                             cr, cg, cb, S, buf, blend)
            else:
                # one end disc contains the other (axis along the view ray):
                # draw both end spheres, the depth test sorts them out
                _raster_cone(Ax, Ay, ra, prm[c, 3], prm[c, 4], Ax, Ay, ra, prm[c, 3], prm[c, 4],
                             cr, cg, cb, S, buf, blend)
                _raster_cone(Bx, By, rb, prm[c, 8], prm[c, 9], Bx, By, rb, prm[c, 8], prm[c, 9],
                             cr, cg, cb, S, buf, blend)
        # resolve: shade the front (and second) fragment, composite over the background
        amb = ambient[n]
        lx = light[n, 0]
        ly = light[n, 1]
        lz = light[n, 2]
        hx = lx
        hy = ly
        hz = lz - 1.0
        hn = math.sqrt(hx * hx + hy * hy + hz * hz)
        if hn > 1e-12:
            hx /= hn
            hy /= hn
            hz /= hn
        else:
            hz = -1.0
        if ao_k > 0.0:
            rr = min(f * ao_r * (2 * C) / zsum, float(_AO_PAD))
            for k in range(8):
                tap[k, 0] = int(math.floor(rr * _AO_DIRS[k, 0] + 0.5))
                tap[k, 1] = int(math.floor(rr * _AO_DIRS[k, 1] + 0.5))
            for y in range(Y0, Y1 + 1):
                for x in range(X0, X1 + 1):
                    zpl[y + _AO_PAD, x + _AO_PAD] = buf[y, x, 0]
        for y in range(Y0, Y1 + 1):
            for x in range(X0, X1 + 1):
                d = buf[y, x, _SDF]
                if d >= 0.5:
                    continue
                alpha = 0.5 - d
                if alpha > 1.0:
                    alpha = 1.0
                ao = 1.0
                if ao_k > 0.0:
                    # screen-space ambient occlusion: 8 taps on a ring of ao_r metres
                    # (at the hand's mean depth), counted when in front of the
                    # fragment's tangent plane
                    qx = buf[y, x, 2]
                    qy = buf[y, x, 3]
                    zf = buf[y, x, 0]
                    qz2 = 1.0 - qx * qx - qy * qy
                    qz = -math.sqrt(qz2) if qz2 > 0.0 else 0.0
                    if qz > -0.35:
                        qz = -0.35
                    gs = zf * if_ / qz
                    occ = 0.0
                    for k in range(8):
                        dx = tap[k, 0]
                        dy = tap[k, 1]
                        zt = zpl[y + _AO_PAD + dy, x + _AO_PAD + dx]
                        # tap depth in front of the tangent plane (ramp over ao_r),
                        # fading out for occluders more than 4 ao_r in front
                        # (branch-free; background taps are inf and contribute 0)
                        e = min(max((zf - (qx * dx + qy * dy) * gs - zt) * iao, 0.0), 1.0)
                        occ += e * max(0.0, 1.0 - max(0.0, (zf - zt) * iao4))
                    ao = 1.0 - ao_k * occ * 0.125
                cr, cg, cb = _shade(buf[y, x, 2], buf[y, x, 3], buf[y, x, 4], buf[y, x, 5], buf[y, x, 6],
                                    lx, ly, lz, hx, hy, hz, amb, ao)
                fa = buf[y, x, 1]
                if fa < 1.0 and buf[y, x, 7] < inf:
                    r2, g2, b2 = _shade(buf[y, x, 9], buf[y, x, 10], buf[y, x, 11], buf[y, x, 12],
                                        buf[y, x, 13], lx, ly, lz, hx, hy, hz, amb, ao)
                    cr = fa * cr + (1.0 - fa) * r2
                    cg = fa * cg + (1.0 - fa) * g2
                    cb = fa * cb + (1.0 - fa) * b2
                ia = 1.0 - alpha
                v = alpha * cr + ia * srgb2lin[bg[n, y, x, 0]]
                img[n, y, x, 0] = lin2srgb[int(min(max(v, 0.0), 1.0) * M1 + 0.5)]
                v = alpha * cg + ia * srgb2lin[bg[n, y, x, 1]]
                img[n, y, x, 1] = lin2srgb[int(min(max(v, 0.0), 1.0) * M1 + 0.5)]
                v = alpha * cb + ia * srgb2lin[bg[n, y, x, 2]]
                img[n, y, x, 2] = lin2srgb[int(min(max(v, 0.0), 1.0) * M1 + 0.5)]
                depth[n, y, x] = buf[y, x, _ZC]
        if ao_k > 0.0:
            for y in range(Y0, Y1 + 1):
                for x in range(X0, X1 + 1):
                    zpl[y + _AO_PAD, x + _AO_PAD] = inf


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def _as_f32(name: str, x, shape: tuple) -> np.ndarray:
    try:
        a = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name}: cannot convert to an array ({exc})") from None
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a real-valued array, got dtype {a.dtype}")
    if a.ndim != len(shape) or any(e is not None and a.shape[i] != e for i, e in enumerate(shape)):
        want = "(" + ", ".join("?" if e is None else str(e) for e in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def render_capsules(
    p0: np.ndarray,
    p1: np.ndarray,
    radius: np.ndarray,
    albedo: np.ndarray,
    K: np.ndarray,
    light_dir: np.ndarray,
    ambient: np.ndarray,
    background: np.ndarray,
    *,
    pixel_offset: float = 0.0,
    blend: float = 0.006,
    ao: float = 0.0,
    ao_radius: float = 0.012,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render batches of shaded round cones over backgrounds.

    Parameters
    ----------
    p0, p1 : (N, C, 3) capsule end points, camera frame (OpenCV: x right,
        y down, z forward), metres, z > 0.
    radius : (N, C, 2) radii at p0 and p1 in metres (>= 0). Unequal radii give a
        round cone (convex hull of the two end spheres).
    albedo : (N, C, 3) sRGB-encoded surface colour in [0, 1] (values outside are
        clipped).
    K : (N, 3, 3) pinhole intrinsics in pixels of the output image
        (``u = fx*x/z + s*y/z + cx``, ``v = fy*y/z + cy``). Pixel radii use
        ``sqrt(fx*fy)``, so keep pixels (nearly) square.
    light_dir : (N, 3) direction from the surface towards the light, camera
        frame; normalised here (must be non-zero).
    ambient : (N,) ambient term in [0, 1].
    background : (N, S, S, 3) uint8 sRGB images to composite over.
    pixel_offset : pixel ``(i, j)`` is sampled at ``(u, v) = (j + o, i + o)``;
        0.0 (default) = OpenCV convention, integer pixel centres. Use 0.5 if
        your intrinsics treat pixel centres as ``integer + 0.5``.
    blend : smooth-union distance in metres: where two capsule surfaces meet
        within ``blend`` of each other their normals and albedos are blended
        (soft palm/joint creases instead of hard intersection lines); 0 = off.
    ao : strength in [0, 1] of an 8-tap screen-space ambient occlusion (subtle
        contact darkening between fingers and palm); 0 = off (default: it costs
        ~25 % more render time for a barely visible effect at 128 px).
    ao_radius : AO sampling radius in metres.
    num_threads : worker threads (default ``numba.config.NUMBA_NUM_THREADS``, i.e. the
        number of cores or the ``NUMBA_NUM_THREADS`` environment variable); the
        output does not depend on it.

    Returns
    -------
    image : (N, S, S, 3) uint8
    depth : (N, S, S) float32, z (metres) of the nearest hand surface whose
        silhouette covers the pixel centre, ``np.inf`` elsewhere.
    """
    bg = np.asarray(background)
    if bg.dtype != np.uint8:
        raise ValueError(f"background: expected dtype uint8, got {bg.dtype}")
    if bg.ndim != 4 or bg.shape[3] != 3 or bg.shape[1] != bg.shape[2]:
        raise ValueError(f"background: expected shape (N, S, S, 3), got {bg.shape}")
    N, S = bg.shape[0], bg.shape[1]
    if S < 1:
        raise ValueError(f"background: image size must be >= 1, got {S}")
    bg = np.ascontiguousarray(bg)
    p0 = _as_f32("p0", p0, (N, None, 3))
    C = p0.shape[1]
    p1 = _as_f32("p1", p1, (N, C, 3))
    radius = _as_f32("radius", radius, (N, C, 2))
    albedo = _as_f32("albedo", albedo, (N, C, 3))
    K = _as_f32("K", K, (N, 3, 3))
    light_dir = _as_f32("light_dir", light_dir, (N, 3))
    ambient = _as_f32("ambient", ambient, (N,))
    if (p0[..., 2] <= 0).any():
        raise ValueError("p0: all z coordinates must be > 0 (points in front of the camera)")
    if (p1[..., 2] <= 0).any():
        raise ValueError("p1: all z coordinates must be > 0 (points in front of the camera)")
    if (radius < 0).any():
        raise ValueError("radius: radii must be >= 0")
    if (K[:, 0, 0] <= 0).any() or (K[:, 1, 1] <= 0).any():
        raise ValueError("K: focal lengths fx = K[:, 0, 0] and fy = K[:, 1, 1] must be > 0")
    if ((ambient < 0) | (ambient > 1)).any():
        raise ValueError("ambient: values must lie in [0, 1]")
    ln = np.linalg.norm(light_dir.astype(np.float64), axis=1)
    if (ln < 1e-6).any():
        raise ValueError("light_dir: vectors must be non-zero")
    light = (light_dir / ln[:, None]).astype(np.float64)
    for name, val, lo, hi in (("pixel_offset", pixel_offset, -1e6, 1e6), ("blend", blend, 0.0, 1.0),
                              ("ao", ao, 0.0, 1.0), ("ao_radius", ao_radius, 1e-6, 1.0)):
        if not (np.isscalar(val) and np.isfinite(val) and lo <= float(val) <= hi):
            raise ValueError(f"{name}: expected a finite number in [{lo:g}, {hi:g}], got {val!r}")
    alb_lin = srgb_to_linear(np.clip(albedo, 0.0, 1.0)).astype(np.float32)

    img = np.empty((N, S, S, 3), np.uint8)
    depth = np.empty((N, S, S), np.float32)
    if N == 0:
        return img, depth
    _run_chunks(_render_chunk, N, num_threads, p0, p1, radius, alb_lin, K, light, ambient.astype(np.float64), bg,
                float(pixel_offset), _SRGB8_TO_LIN, _LIN_TO_SRGB8, float(blend), float(ao), float(ao_radius),
                img, depth)
    return img, depth


# ---------------------------------------------------------------------------
# demo scene + benchmark:  python -m handlatent.synth.render [--bench] [--demo PATH]
# ---------------------------------------------------------------------------


def _rodrigues(axis, ang):
    axis = np.asarray(axis, np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(ang) * k + (1 - np.cos(ang)) * (k @ k)


def _demo_hand(rng):
    """A crude right hand in its own frame (metres; palm faces -z, fingers point to -y)."""
    p0, p1, rad = [], [], []

    def cap(a, b, ra, rb):
        p0.append(a)
        p1.append(b)
        rad.append((ra, rb))

    mcp = [(-0.034, -0.043), (-0.012, -0.049), (0.010, -0.046), (0.030, -0.038)]
    lens = [(0.040, 0.025, 0.019), (0.045, 0.028, 0.020), (0.042, 0.027, 0.020), (0.033, 0.020, 0.018)]
    rads = [(0.0100, 0.0088, 0.0080, 0.0072), (0.0104, 0.0090, 0.0082, 0.0074),
            (0.0098, 0.0086, 0.0078, 0.0070), (0.0088, 0.0078, 0.0070, 0.0064)]
    spread = [-0.22, -0.06, 0.08, 0.25]
    for f in range(4):
        curl = rng.uniform(0.0, 0.9)
        p = np.array([mcp[f][0], mcp[f][1], 0.0])
        d = np.array([np.sin(spread[f] + rng.normal(0, 0.05)), -np.cos(spread[f]), 0.0])
        for b in range(3):
            d = _rodrigues([1, 0, 0], curl * (0.9 if b == 0 else 1.1)) @ d
            q = p + lens[f][b] * d
            cap(p, q, rads[f][b], rads[f][b + 1])
            p = q
    p = np.array([-0.030, 0.022, -0.004])
    d = np.array([-0.62, -0.74, -0.25])
    d /= np.linalg.norm(d)
    curl = rng.uniform(0.0, 0.6)
    for b, (ln, ra, rb) in enumerate(((0.042, 0.0135, 0.0115), (0.033, 0.0115, 0.0098), (0.026, 0.0098, 0.0085))):
        d = _rodrigues([0.3, -0.2, 1.0], curl * 0.6) @ d
        q = p + ln * d
        cap(p, q, ra, rb)
        p = q
    for f in range(4):  # metacarpals
        cap(np.array([mcp[f][0], mcp[f][1], 0.0]), np.array([mcp[f][0] * 0.55, 0.038, 0.0]), 0.0125, 0.0145)
    cap(np.array([-0.033, -0.040, 0.0]), np.array([0.029, -0.036, 0.0]), 0.0125, 0.0115)
    cap(np.array([-0.028, -0.012, 0.0]), np.array([0.028, -0.010, 0.0]), 0.0160, 0.0150)
    cap(np.array([-0.022, 0.020, 0.0]), np.array([0.022, 0.022, 0.0]), 0.0170, 0.0160)
    cap(np.array([-0.030, 0.022, -0.003]), np.array([-0.028, -0.030, 0.0]), 0.0170, 0.0120)  # thenar
    cap(np.array([0.026, 0.030, 0.0]), np.array([0.030, -0.030, 0.0]), 0.0140, 0.0110)  # hypothenar
    cap(np.array([0.0, 0.045, 0.0]), np.array([0.0, 0.060, 0.0]), 0.0200, 0.0210)  # wrist
    cap(np.array([0.0, 0.060, 0.0]), np.array([0.0, 0.220, 0.0]), 0.0215, 0.0290)  # forearm
    return np.array(p0), np.array(p1), np.array(rad)


def _demo_scene(rng, n: int, size: int, fill: float = 0.7):
    """Random hand-like capsule batches for demos and benchmarks.

    Returns the first seven arguments of :func:`render_capsules` (31 capsules
    per image, hand 0.3-0.7 m away, its ~0.19 m length spanning ``fill`` of the crop).
    """
    hands = [_demo_hand(rng) for _ in range(n)]
    C = hands[0][0].shape[0]
    p0 = np.zeros((n, C, 3), np.float32)
    p1 = np.zeros((n, C, 3), np.float32)
    rad = np.zeros((n, C, 2), np.float32)
    alb = np.zeros((n, C, 3), np.float32)
    K = np.zeros((n, 3, 3), np.float32)
    light = np.zeros((n, 3), np.float32)
    amb = np.zeros(n, np.float32)
    for i, (a, b, r) in enumerate(hands):
        R = _rodrigues(rng.normal(size=3), rng.uniform(0, 0.8)) @ _rodrigues([0, 0, 1], rng.uniform(-0.6, 0.6))
        if rng.uniform() < 0.3:
            R = R @ _rodrigues([0, 1, 0], np.pi)  # back of the hand
        z = rng.uniform(0.3, 0.7)
        t = np.array([0.0, 0.0, z]) - R @ np.array([0.0, -0.045, 0.0]) + rng.normal(0, 0.005, 3)
        p0[i] = a @ R.T + t
        p1[i] = b @ R.T + t
        rad[i] = r
        skin = np.array([0.87, 0.64, 0.52]) * rng.uniform(0.55, 1.05) + rng.normal(0, 0.03, 3)
        alb[i] = np.clip(skin + rng.normal(0, 0.008, (C, 3)), 0, 1)
        f = size * fill * z / 0.19
        K[i] = [[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]]
        ld = rng.normal(size=3)
        ld[2] = -abs(ld[2]) - 0.3
        light[i] = ld / np.linalg.norm(ld)
        amb[i] = rng.uniform(0.2, 0.45)
    return p0, p1, rad, alb, K, light, amb


def _synth_scene_args(rng, n: int, size: int):
    """The render_capsules inputs of the real dataset pipeline (handlatent.synth.scene)."""
    from handlatent.synth import camera, kinematics, scene

    sc = scene.sample_scene(rng, n)
    geom = kinematics.forward_kinematics(sc.angles, sc.shape, sc.wrist)
    palm = geom.keypoints[:, 0]
    xyz = camera.place_points(geom.keypoints, palm, sc.view)
    p0 = camera.place_points(geom.p0, palm, sc.view)
    p1 = camera.place_points(geom.p1, palm, sc.view)
    K = camera.crop_intrinsics(xyz, sc.view, size)
    albedo = scene.capsule_albedo(sc.skin, geom.part)
    return p0, p1, geom.radius, albedo, K, sc.light_dir, sc.ambient


def _bench(sizes=(64, 128, 256), n: int = 512, repeats: int = 7, threads: int | None = None,
           scenes: str = "demo", **render_kw) -> None:
    """Print wall-clock throughput (best and median of ``repeats``) with ``threads`` workers
    and the CPU time per image of a single-threaded run (insensitive to other load)."""
    import time

    from handlatent.synth.backgrounds import render_backgrounds, sample_backgrounds

    print(f"numba {numba.__version__}, threads {_n_threads(threads)}, N={n}, best of {repeats}, "
          f"scenes={scenes}, os.getloadavg()={tuple(round(x, 1) for x in os.getloadavg())}")
    for size in sizes:
        rng = np.random.default_rng(0)
        make = _synth_scene_args if scenes == "synth" else _demo_scene
        args = make(rng, n, size)
        params = sample_backgrounds(rng, n)
        bg = render_backgrounds(params, size, num_threads=threads)  # warm-up / compile
        img, depth = render_capsules(*(a[:8] for a in args), bg[:8], num_threads=threads, **render_kw)
        tb, tr, cb, cr = [], [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            bg = render_backgrounds(params, size, num_threads=threads)
            t1 = time.perf_counter()
            img, depth = render_capsules(*args, bg, num_threads=threads, **render_kw)
            t2 = time.perf_counter()
            tb.append(t1 - t0)
            tr.append(t2 - t1)
        for _ in range(max(1, repeats // 2)):
            t0 = time.thread_time()  # one worker runs in the calling thread
            render_backgrounds(params, size, num_threads=1)
            t1 = time.thread_time()
            render_capsules(*args, bg, num_threads=1, **render_kw)
            t2 = time.thread_time()
            cb.append(t1 - t0)
            cr.append(t2 - t1)
        cover = float(np.isfinite(depth).mean())
        print(f"{size:4d} px  render_capsules {n / min(tr):7.0f} img/s (median {n / np.median(tr):6.0f},"
              f" {min(cr) / n * 1e6:6.0f} us CPU/img, hand covers {cover:.0%})"
              f"   render_backgrounds {n / min(tb):7.0f} img/s (median {n / np.median(tb):6.0f},"
              f" {min(cb) / n * 1e6:5.0f} us CPU/img)")


def _demo(path: str, size: int = 128, seed: int = 0) -> None:
    from PIL import Image

    from handlatent.synth.backgrounds import KIND_NAMES, render_backgrounds, sample_backgrounds

    rng = np.random.default_rng(seed)
    n = 2 * len(KIND_NAMES)
    args = _demo_scene(rng, n, size)
    params = sample_backgrounds(rng, n)
    params.kind[:] = np.tile(np.arange(len(KIND_NAMES)), 2)
    img, _ = render_capsules(*args, render_backgrounds(params, size))
    rows = [np.concatenate(list(img[r * len(KIND_NAMES):(r + 1) * len(KIND_NAMES)]), 1) for r in range(2)]
    Image.fromarray(np.concatenate(rows, 0)).save(path)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Benchmark / demo of the synthetic hand rasterizer")
    ap.add_argument("--bench", action="store_true", help="time render_capsules and render_backgrounds")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("-n", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--demo", metavar="PNG", help="write a demo grid (hands over every background kind)")
    ap.add_argument("--demo-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenes", choices=("demo", "synth"), default="demo",
                    help="demo: built-in 31-capsule hand; synth: scenes of handlatent.synth.scene")
    ap.add_argument("--ao", type=float, default=0.0, help="render_capsules(ao=...)")
    ap.add_argument("--blend", type=float, default=0.006, help="render_capsules(blend=...)")
    a = ap.parse_args()
    if a.demo:
        _demo(a.demo, a.demo_size, a.seed)
    if a.bench or not a.demo:
        _bench(tuple(a.sizes), a.n, a.repeats, a.threads, a.scenes, ao=a.ao, blend=a.blend)

"""Tracking of point-like targets: IDs, velocities, coasting and M-of-N confirmation.

    tracker = Tracker(TrackerConfig(), fps=30.0)
    motion = CameraMotion()                       # optional camera-motion compensation
    for t, grey, det in frames:                   # t: capture time in seconds
        reports = tracker.update(t, det.boxes, det.scores,
                                 motion=motion.estimate(grey), frame_size=grey.shape[::-1])
        for r in reports:                         # confirmed tracks (and those lost just now)
            print(r.id, r.state, r.centre, r.velocity)

What it does, per update (all positions in frame pixels, all times in seconds):

1. **Time.** ``dt`` is the difference of the frames' capture times, not a frame count, so a
   live source that drops frames keeps its velocities in px/s. A time going backwards, or a
   gap longer than the coast limit, ends every track ("lost") and tracking restarts: no
   velocity is ever estimated across such a gap. A non-finite time counts as one nominal frame
   period after the last one.
2. **Prediction.** Each track is a constant-velocity Kalman filter, state (x, y, vx, vy) in px
   and px/s, process noise a white acceleration of spectral density ``accel_psd`` px^2/s^3,
   measurement noise ``meas_std_px``. With camera-motion compensation the predictions (and
   their velocities, covariances and trails) are warped by the estimated frame-to-frame
   affine motion (:class:`CameraMotion`); velocities are then relative to the background.
3. **Association by distance.** A detection (its box centre) may join a track when it lies
   within the track's gate of the predicted centre: ``gate_px``, or 3 standard deviations of
   the predicted innovation when that is larger (a new track whose speed is unknown), or
   ``gate_px + coast_gate_speed * (time since its last hit)`` for a coasting track (a target
   may turn while unseen), at most ``max_gate_factor * gate_px``. The gated pairs are split
   into connected groups and each group is solved exactly (minimum total distance, Hungarian
   algorithm). Confirmed tracks are served first, tentative ones take what is left.
4. **Life cycle.** An unmatched detection starts a *tentative* track (not when it lies within
   ``gate_px`` of a confirmed track: a second detection of a known target). A tentative track
   becomes *confirmed* once it was hit in ``confirm_m`` of its last ``confirm_n`` updates
   (M-of-N) and, with ``min_move_px`` > 0 (moving-target indication, off by default), has
   moved that far from where it started; it is dropped silently when its last ``confirm_n``
   updates hold more than ``confirm_n - confirm_m`` misses. A confirmed track that is missed
   coasts on its prediction; it is *lost* (reported once with state "lost", then removed)
   when it has had no hit for more than ``coast_s`` seconds, its prediction leaves the frame
   or, with ``min_hit_rate`` > 0, it was hit in fewer than that share of its last 16 updates.
5. **Clutter map** (``clutter_s`` > 0; off by default). A coarse grid over the frame
   (``clutter_cell_px`` cells) holds, per cell, the share of recent time in which a fed
   detection fell there: an exponential mean with time constant ``clutter_s`` seconds, so a
   source that drops frames weighs its frames by the time they cover. A detection whose cell or
   one of its 8 neighbours is above ``clutter_max`` is not used (no hit, no birth); every fed
   detection then updates the map. Spots that fire for long stretches (glints, edges, hot
   buildings) stop feeding tracks after about ``clutter_max * clutter_s`` seconds, while a
   target that moves a few cells per ``clutter_s`` never builds up its cells. With camera-motion
   compensation the cells stay fixed to the background. A target that hovers in one spot for
   longer than that is suppressed too (see docs/tracking.md).
6. **ID revival** (``revive_s``, 2 s by default; 0 turns it off). A lost confirmed track is
   remembered for ``revive_s`` seconds, moving on its last velocity (and warped with the
   camera motion). A track confirmed in that time whose centre lies within the coasting gate
   of such a remembered prediction (``gate_px + coast_gate_speed * (time since its last
   hit)``, at most ``max_gate_factor * gate_px``) takes the old ID instead of a new one (the
   nearest pairs first), with its age and hits. So a target that drops out for longer than
   the coast keeps its ID when it comes back; nothing is reported while it is away, so false
   alarms do not change. A "lost" report is then not final: the ID may return.

Only numpy (and OpenCV for :class:`CameraMotion`): this runs on the deployment footprint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

STATES = ("tentative", "confirmed", "lost")
HISTORY = 16  # updates over which a confirmed track's hit rate is taken


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings; the defaults are the measured ones (docs/tracking.md)."""

    gate_px: float = 12.0          # association radius around the predicted centre (px)
    confirm_m: int = 4             # confirmed after M hits ...
    confirm_n: int = 6             # ... in the last N updates
    coast_s: float = 0.5           # a confirmed track is lost after this long without a hit (s)
    min_hit_rate: float = 0.0      # ... or when hit in fewer than this share of its last 16
    min_move_px: float = 0.0       # confirmed only once this far from where it started (px)
    min_score: float = 0.05        # detections below this score are not fed to the tracker
    motion: bool = False           # camera-motion compensation (the runtime estimates it)
    clutter_s: float = 0.0         # clutter map time constant (s); 0: no clutter map
    clutter_cell_px: float = 6.0   # clutter map cell size (px)
    clutter_max: float = 0.3       # detections where the map is above this are not used
    revive_s: float = 2.0          # a lost track's ID may be taken back for this long (s); 0: off
    meas_std_px: float = 1.0       # detection centre noise (px, 1 sigma)
    accel_psd: float = 3000.0      # white-acceleration process noise (px^2 / s^3)
    init_speed_std: float = 100.0  # speed uncertainty of a new track (px/s, 1 sigma)
    max_gate_factor: float = 4.0   # the widened gate is at most this times gate_px
    coast_gate_speed: float = 40.0  # a coasting track's gate grows by this many px per s
    trail_len: int = 20            # centres kept per track for drawing
    size_alpha: float = 0.3        # box size and score: exponential mean weight of a new hit

    def check(self) -> "TrackerConfig":
        """Raise ValueError (one line) for settings that cannot work; returns self."""
        if not (math.isfinite(self.gate_px) and self.gate_px > 0):
            raise ValueError(f"the track gate must be > 0 px, got {self.gate_px}")
        if not 1 <= self.confirm_m <= self.confirm_n <= 16:
            raise ValueError(f"track confirmation M/N needs 1 <= M <= N <= 16, got "
                             f"{self.confirm_m}/{self.confirm_n}")
        if not (math.isfinite(self.coast_s) and self.coast_s >= 0):
            raise ValueError(f"the track coast limit must be >= 0 s, got {self.coast_s}")
        if not (math.isfinite(self.min_move_px) and self.min_move_px >= 0):
            raise ValueError(f"the track minimum move must be >= 0 px, got {self.min_move_px}")
        if not 0 <= self.min_hit_rate <= 1:
            raise ValueError(f"the track minimum hit rate must be in [0, 1], got "
                             f"{self.min_hit_rate}")
        if not (math.isfinite(self.clutter_s) and self.clutter_s >= 0):
            raise ValueError(f"the clutter map time must be >= 0 s, got {self.clutter_s}")
        if not (math.isfinite(self.clutter_cell_px) and self.clutter_cell_px >= 1):
            raise ValueError(f"the clutter map cell must be >= 1 px, got {self.clutter_cell_px}")
        if not 0 < self.clutter_max < 1:
            raise ValueError(f"the clutter map threshold must be in (0, 1), got "
                             f"{self.clutter_max}")
        if not (math.isfinite(self.revive_s) and self.revive_s >= 0):
            raise ValueError(f"the track revival time must be >= 0 s, got {self.revive_s}")
        if not 0 <= self.min_score <= 1:
            raise ValueError(f"the track score must be in [0, 1], got {self.min_score}")
        if self.meas_std_px <= 0 or self.accel_psd < 0 or self.init_speed_std < 0 \
                or self.max_gate_factor < 1 or self.trail_len < 1 \
                or not 0 < self.size_alpha <= 1:
            raise ValueError("invalid tracker filter settings")
        return self


class _Grave(NamedTuple):
    """A lost confirmed track that may still take its ID back (module docstring, step 6)."""

    id: int
    x: np.ndarray        # (x, y, vx, vy) when lost
    lost_t: float        # time it was lost (s)
    last_hit: float      # time of its last detection (s)
    born: float          # time of its first detection (s)
    hits: int


@dataclass(frozen=True)
class TrackReport:
    """One track after an update. Positions in frame pixels, velocity in px/s (relative to
    the background with camera-motion compensation), times in seconds."""

    id: int
    state: str                           # "tentative", "confirmed" or "lost"
    centre: Tuple[float, float]          # filtered centre (x, y)
    box: Tuple[float, float, float, float]  # xyxy: centre +- mean detection size / 2
    velocity: Tuple[float, float]        # (vx, vy) px/s
    age_s: float                         # time since the first detection
    since_hit_s: float                   # time since the last detection (0: hit now)
    hits: int                            # detections assigned so far
    updates: int                         # frames seen so far
    score: float                         # exponential mean of the assigned detections' scores
    trail: np.ndarray = field(repr=False, compare=False)  # (K, 2) recent centres, oldest first

    def to_json(self, fps: float) -> dict:
        """The JSON-lines form; ``fps`` is the source's nominal frame rate (px/frame)."""
        r = lambda v, n=2: round(float(v), n)  # noqa: E731
        vx, vy = self.velocity
        return {"id": self.id, "state": self.state, "age_s": r(self.age_s, 3),
                "hits": self.hits, "updates": self.updates,
                "since_hit_s": r(self.since_hit_s, 3),
                "box": [r(v) for v in self.box], "centre": [r(v) for v in self.centre],
                "velocity_px_per_frame": [r(vx / fps, 3), r(vy / fps, 3)],
                "velocity_px_per_s": [r(vx), r(vy)], "score": r(self.score, 4)}


# --------------------------------------------------------------------------------------------
# Assignment: minimum total cost over gated pairs
# --------------------------------------------------------------------------------------------
def _hungarian(cost: List[List[float]]) -> List[Tuple[int, int]]:
    """Minimum-cost assignment of every row of a dense ``cost`` (rows <= columns), as
    (row, column) pairs: the O(n^2 m) shortest-augmenting-path Hungarian algorithm."""
    n, m = len(cost), len(cost[0])
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    match = [0] * (m + 1)               # match[j]: row (1-based) assigned to column j
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = match[j0], inf, 0
            row = cost[i0 - 1]
            for j in range(1, m + 1):
                if not used[j]:
                    cur = row[j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    return [(match[j] - 1, j - 1) for j in range(1, m + 1) if match[j]]


def assign(cost: np.ndarray, allowed: np.ndarray) -> List[Tuple[int, int]]:
    """Pairs (row, column) of a minimum-total-cost matching that uses only ``allowed`` pairs
    and, among those, matches as many rows as possible. ``cost`` and ``allowed`` are (R, C).

    The allowed pairs fall into connected groups (usually one track and one detection); each
    group is solved on its own, exactly."""
    rows, cols = np.nonzero(allowed)
    if rows.size == 0:
        return []
    n_rows = cost.shape[0]
    parent = list(range(n_rows + cost.shape[1]))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for r, c in zip(rows.tolist(), cols.tolist()):
        ra, rb = find(r), find(n_rows + c)
        if ra != rb:
            parent[ra] = rb
    groups: Dict[int, Tuple[List[int], List[int]]] = {}
    for r, c in zip(rows.tolist(), cols.tolist()):
        g = groups.setdefault(find(r), ([], []))
        if r not in g[0]:
            g[0].append(r)
        if c not in g[1]:
            g[1].append(c)
    pairs: List[Tuple[int, int]] = []
    for g_rows, g_cols in groups.values():
        if len(g_rows) == 1 and len(g_cols) == 1:
            pairs.append((g_rows[0], g_cols[0]))
            continue
        sub = cost[np.ix_(g_rows, g_cols)]
        ok = allowed[np.ix_(g_rows, g_cols)]
        big = float(sub[ok].max()) * 4.0 + 1e6  # a forbidden pair costs more than any matching
        sub = np.where(ok, sub, big)
        flip = len(g_rows) > len(g_cols)
        table = (sub.T if flip else sub).tolist()
        for a, b in _hungarian(table):
            r, c = (b, a) if flip else (a, b)
            if ok[r, c]:
                pairs.append((g_rows[r], g_cols[c]))
    return pairs


# --------------------------------------------------------------------------------------------
# The tracker
# --------------------------------------------------------------------------------------------
class Tracker:
    """Multi-target tracker for point-like detections (see the module docstring).

    ``fps``: the source's nominal frame rate, used for a frame with no valid time stamp and
    for velocities in px/frame. Not thread-safe: one thread calls :meth:`update`."""

    def __init__(self, config: Optional[TrackerConfig] = None, fps: Optional[float] = None) -> None:
        self.cfg = (config or TrackerConfig()).check()
        self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else 30.0
        c = self.cfg
        self._r2 = c.meas_std_px ** 2
        self._window_mask = (1 << c.confirm_n) - 1
        self._history_mask = (1 << HISTORY) - 1
        bits = (np.arange(1 << HISTORY)[:, None] >> np.arange(HISTORY)[None, :]) & 1
        self._popcount = bits.sum(axis=1).astype(np.int8)  # ones in a 16-bit pattern
        self._next_id = 1
        self.started = 0        # tracks started (tentative ones included)
        self._t: Optional[float] = None
        self.jumps = 0          # time jumps that ended every track
        self.updates = 0
        self.tentative = 0      # tentative tracks after the last update
        self.clutter_dropped = 0  # detections not used because the clutter map was high there
        self.revived = 0        # tracks that took back a lost track's ID
        self._graves: List[_Grave] = []  # lost tracks that may come back (revive_s > 0)
        self.clutter = ClutterMap(c.clutter_s, c.clutter_cell_px, c.clutter_max) \
            if c.clutter_s > 0 else None
        self._alloc(0)

    # -- state: one row per track (structure of arrays) ----------------------------------------
    def _alloc(self, n: int) -> None:
        L = self.cfg.trail_len
        self.ids = np.zeros(n, np.int64)
        self.x = np.zeros((n, 4))             # x, y (px), vx, vy (px/s)
        self.P = np.zeros((n, 4, 4))          # covariance
        self.size = np.zeros((n, 2))          # mean detection width, height (px)
        self.score = np.zeros(n)
        self.born = np.zeros(n)               # time of the first detection (s)
        self.last_hit = np.zeros(n)           # time of the last detection (s)
        self.hits = np.zeros(n, np.int64)
        self.n_updates = np.zeros(n, np.int64)
        self.history = np.zeros(n, np.int64)  # hit (1) / miss (0) of the last 16 updates,
        #                                       newest in the lowest bit
        self.confirmed = np.zeros(n, bool)
        self.origin = np.zeros((n, 2))        # first detection's centre (px, warped with motion)
        self.trail = np.zeros((n, L, 2))      # recent centres, newest last
        self.trail_n = np.zeros(n, np.int64)

    _FIELDS = ("ids", "x", "P", "size", "score", "born", "last_hit", "hits", "n_updates",
               "history", "confirmed", "origin", "trail", "trail_n")

    def _keep(self, keep: np.ndarray) -> None:
        for name in self._FIELDS:
            setattr(self, name, getattr(self, name)[keep])

    def __len__(self) -> int:
        return int(self.ids.size)

    # -- the update ----------------------------------------------------------------------------
    def update(self, t: float, boxes: np.ndarray, scores: np.ndarray,
               motion: Optional[np.ndarray] = None,
               frame_size: Optional[Tuple[int, int]] = None) -> List[TrackReport]:
        """Feed one frame: capture time ``t`` (s), detections ``boxes`` (N, 4) xyxy frame
        pixels with ``scores`` (N,), optional camera motion ``motion`` (2, 3) affine from the
        previous frame's pixels to this frame's, ``frame_size`` (width, height) px.

        Returns the confirmed tracks and the tracks lost in this update (state "lost"), in ID
        order. Rows with a non-finite value, an inverted box or a score below the config's
        ``min_score`` are ignored; an empty list is a frame without detections."""
        c = self.cfg
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if motion is not None:
            motion = np.asarray(motion, np.float64).reshape(2, 3)
        if boxes.shape[0] != scores.shape[0]:
            raise ValueError(f"{boxes.shape[0]} boxes but {scores.shape[0]} scores")
        ok = (np.isfinite(boxes).all(axis=1) & np.isfinite(scores) & (scores >= c.min_score)
              & (boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1]))
        boxes, scores = boxes[ok], scores[ok]
        centres = (boxes[:, :2] + boxes[:, 2:]) * 0.5
        sizes = boxes[:, 2:] - boxes[:, :2]
        self.updates += 1

        # 1. Time.
        lost: List[TrackReport] = []
        t = float(t) if t is not None else float("nan")
        if not math.isfinite(t):
            t = (self._t + 1.0 / self.fps) if self._t is not None else 0.0
        dt = 0.0 if self._t is None else t - self._t
        gap = dt if self._t is not None else 1.0 / self.fps  # time this frame stands for
        if dt < 0 or dt > c.coast_s:
            if len(self):
                self.jumps += 1
                lost = self._reports(np.flatnonzero(self.confirmed), t, "lost")
                self._alloc(0)
            self._graves = []
            dt = 0.0
        self._t = t

        # 2. Prediction (and camera motion).
        if len(self):
            if dt > 0:
                self._predict(dt)
            if motion is not None:
                self._warp(motion)
        if self._graves:
            self._graves = [g for g in self._graves if t - g.lost_t <= c.revive_s + 1e-9]
            if motion is not None:
                a = motion[:, :2]
                self._graves = [g._replace(x=np.concatenate([g.x[:2] @ a.T + motion[:, 2],
                                                             g.x[2:] @ a.T]))
                                for g in self._graves]

        # 2b. Clutter map: drop detections on spots that fire most of the time, then learn.
        if self.clutter is not None:
            if gap < 0:
                self.clutter.reset()
            elif motion is not None:
                self.clutter.warp(motion)
            busy = self.clutter.busy(centres)
            self.clutter.add(centres, max(gap, 0.0))
            if busy.any():
                self.clutter_dropped += int(busy.sum())
                centres, sizes, scores = centres[~busy], sizes[~busy], scores[~busy]

        # 3. Association: confirmed tracks first, then tentative ones.
        hit_track = np.zeros(len(self), bool)
        det_used = np.zeros(len(centres), bool)
        if len(self) and len(centres):
            pvar = np.maximum(self.P[:, 0, 0], self.P[:, 1, 1]) + self._r2
            gate = np.clip(np.maximum(3.0 * np.sqrt(pvar), self._coast_gate(t - self.last_hit)),
                           c.gate_px, c.gate_px * c.max_gate_factor)
            dist = np.sqrt(((self.x[:, None, :2] - centres[None, :, :]) ** 2).sum(axis=2))
            within = dist <= gate[:, None]
            for group in (self.confirmed, ~self.confirmed):
                rows = np.flatnonzero(group)
                if rows.size == 0:
                    continue
                allowed = within[rows] & ~det_used[None, :]
                pairs = assign(dist[rows], allowed)
                if not pairs:
                    continue
                ti = rows[[p[0] for p in pairs]]
                di = np.array([p[1] for p in pairs], np.int64)
                self._correct(ti, centres[di], sizes[di], scores[di], t)
                hit_track[ti] = True
                det_used[di] = True

        # 4. Life cycle of the existing tracks.
        if len(self):
            self.n_updates += 1
            self.history = ((self.history << 1) | hit_track) & self._history_mask
            in_window = np.minimum(self.n_updates, c.confirm_n)
            hits_in_window = self._popcount[self.history & self._window_mask]
            can_confirm = hits_in_window >= c.confirm_m
            if c.min_move_px > 0:
                moved = np.hypot(*(self.x[:, :2] - self.origin).T)
                can_confirm &= moved >= c.min_move_px
            newly = can_confirm & ~self.confirmed
            self.confirmed |= can_confirm
            drop_tentative = ~self.confirmed & (in_window - hits_in_window
                                                > c.confirm_n - c.confirm_m)
            expired = self.confirmed & (t - self.last_hit > c.coast_s + 1e-9)
            if c.min_hit_rate > 0:
                seen = np.minimum(self.n_updates, HISTORY)
                rate = self._popcount[self.history] / seen
                expired |= self.confirmed & (seen >= HISTORY) & (rate < c.min_hit_rate)
            if frame_size is not None:
                w, h = frame_size
                px, py = self.x[:, 0], self.x[:, 1]
                outside = (px < -c.gate_px) | (py < -c.gate_px) | (px > w + c.gate_px) \
                    | (py > h + c.gate_px)
                expired |= self.confirmed & outside
                drop_tentative |= ~self.confirmed & outside
            if expired.any():
                lost += self._reports(np.flatnonzero(expired), t, "lost")
                if c.revive_s > 0:
                    self._graves += [_Grave(int(self.ids[i]), self.x[i].copy(), t,
                                            float(self.last_hit[i]), float(self.born[i]),
                                            int(self.hits[i])) for i in np.flatnonzero(expired)]
            if expired.any() or drop_tentative.any():
                keep = ~(expired | drop_tentative)
                self._keep(keep)
                newly = newly[keep]
            if self._graves and newly.any():
                self._revive(np.flatnonzero(newly), t)
            self._push_trail()

        # 5. Births from the detections left, away from confirmed tracks.
        new = np.flatnonzero(~det_used)
        if new.size and self.confirmed.any():
            near = np.sqrt(((centres[new, None, :] - self.x[None, self.confirmed, :2]) ** 2)
                           .sum(axis=2)).min(axis=1) <= c.gate_px
            new = new[~near]
        if new.size:
            self._birth(centres[new], sizes[new], scores[new], t)

        self.tentative = int((~self.confirmed).sum())
        out = self._reports(np.flatnonzero(self.confirmed), t, "confirmed") + lost
        out.sort(key=lambda r: r.id)
        return out

    # -- Kalman filter -------------------------------------------------------------------------
    def _predict(self, dt: float) -> None:
        q = self.cfg.accel_psd
        F = np.eye(4)
        F[0, 2] = F[1, 3] = dt
        Q = np.zeros((4, 4))
        Q[0, 0] = Q[1, 1] = q * dt ** 3 / 3.0
        Q[0, 2] = Q[2, 0] = Q[1, 3] = Q[3, 1] = q * dt ** 2 / 2.0
        Q[2, 2] = Q[3, 3] = q * dt
        self.x[:, :2] += self.x[:, 2:] * dt
        self.P = F @ self.P @ F.T + Q

    def _warp(self, m: np.ndarray) -> None:
        """Apply the camera's affine motion (prev -> current pixels) to every track."""
        a = m[:, :2]
        self.x[:, :2] = self.x[:, :2] @ a.T + m[:, 2]
        self.x[:, 2:] = self.x[:, 2:] @ a.T
        J = np.zeros((4, 4))
        J[:2, :2] = J[2:, 2:] = a
        self.P = J @ self.P @ J.T
        self.trail = self.trail @ a.T + m[:, 2]
        self.origin = self.origin @ a.T + m[:, 2]

    def _correct(self, ti: np.ndarray, z: np.ndarray, size: np.ndarray, score: np.ndarray,
                 t: float) -> None:
        """Kalman update of tracks ``ti`` with centres ``z`` (k, 2)."""
        P = self.P[ti]
        s00 = P[:, 0, 0] + self._r2
        s11 = P[:, 1, 1] + self._r2
        s01 = P[:, 0, 1]
        det = s00 * s11 - s01 * s01
        s_inv = np.empty((len(ti), 2, 2))
        s_inv[:, 0, 0], s_inv[:, 1, 1] = s11 / det, s00 / det
        s_inv[:, 0, 1] = s_inv[:, 1, 0] = -s01 / det
        K = P[:, :, :2] @ s_inv                               # (k, 4, 2)
        y = z - self.x[ti, :2]
        self.x[ti] += (K @ y[:, :, None])[:, :, 0]
        self.P[ti] = P - K @ P[:, :2, :]
        a = self.cfg.size_alpha
        self.size[ti] += a * (size - self.size[ti])
        self.score[ti] += a * (score - self.score[ti])
        self.hits[ti] += 1
        self.last_hit[ti] = t

    def _coast_gate(self, since_hit: np.ndarray) -> np.ndarray:
        """The gate of a track unseen for ``since_hit`` seconds (module docstring, step 3):
        ``gate_px`` grown by ``coast_gate_speed`` per second, at most ``max_gate_factor`` times
        ``gate_px``."""
        c = self.cfg
        return np.minimum(c.gate_px + c.coast_gate_speed * since_hit,
                          c.gate_px * c.max_gate_factor)

    # -- ID revival ----------------------------------------------------------------------------
    def _revive(self, rows: np.ndarray, t: float) -> None:
        """Give the just-confirmed tracks ``rows`` the IDs of remembered lost tracks whose
        prediction lies within the coasting gate (module docstring, step 6)."""
        graves = self._graves
        pred = np.array([g.x[:2] + g.x[2:] * (t - g.lost_t) for g in graves])
        gate = self._coast_gate(t - np.array([g.last_hit for g in graves]))
        dist = np.sqrt(((self.x[rows, None, :2] - pred[None, :, :]) ** 2).sum(axis=2))
        taken = set()
        for r, k in assign(dist, dist <= gate[None, :]):
            i, g = rows[r], graves[k]
            self.ids[i] = g.id
            self.born[i] = g.born
            self.hits[i] += g.hits
            self.revived += 1
            taken.add(k)
        self._graves = [g for k, g in enumerate(graves) if k not in taken]

    # -- births, trails, reports ---------------------------------------------------------------
    def _birth(self, z: np.ndarray, size: np.ndarray, score: np.ndarray, t: float) -> None:
        k = len(z)
        c = self.cfg
        old = len(self)
        grown = {name: getattr(self, name) for name in self._FIELDS}
        self._alloc(old + k)
        for name, arr in grown.items():
            getattr(self, name)[:old] = arr
        sl = slice(old, old + k)
        self.ids[sl] = np.arange(self._next_id, self._next_id + k)
        self._next_id += k
        self.started += k
        self.x[sl, :2] = z
        self.origin[sl] = z
        self.P[sl] = np.diag([self._r2, self._r2, c.init_speed_std ** 2, c.init_speed_std ** 2])
        self.size[sl] = size
        self.score[sl] = score
        self.born[sl] = t
        self.last_hit[sl] = t
        self.hits[sl] = 1
        self.n_updates[sl] = 1
        self.history[sl] = 1
        self.confirmed[sl] = c.confirm_m <= 1
        self.trail[sl, -1] = z
        self.trail_n[sl] = 1

    def _push_trail(self) -> None:
        self.trail[:, :-1] = self.trail[:, 1:].copy()
        self.trail[:, -1] = self.x[:, :2]
        self.trail_n = np.minimum(self.trail_n + 1, self.cfg.trail_len)

    def _reports(self, rows: np.ndarray, t: float, state: str) -> List[TrackReport]:
        out = []
        for i in rows.tolist():
            cx, cy, vx, vy = self.x[i].tolist()
            hw, hh = (self.size[i] * 0.5).tolist()
            out.append(TrackReport(
                id=int(self.ids[i]), state=state, centre=(cx, cy),
                box=(cx - hw, cy - hh, cx + hw, cy + hh), velocity=(vx, vy),
                age_s=t - float(self.born[i]), since_hit_s=t - float(self.last_hit[i]),
                hits=int(self.hits[i]), updates=int(self.n_updates[i]),
                score=float(self.score[i]),
                trail=self.trail[i, self.cfg.trail_len - int(self.trail_n[i]):].copy()))
        return out


# --------------------------------------------------------------------------------------------
# Clutter map
# --------------------------------------------------------------------------------------------
class ClutterMap:
    """Per-cell share of recent time with a detection (module docstring, step 5).

    ``tau_s``: time constant (s); ``cell_px``: cell size (px); ``threshold``: a position is
    busy when its cell or a neighbour is above this. The cells are fixed to the background:
    with camera motion (:meth:`warp`) the map keeps the accumulated transform from the current
    frame to the first one instead of resampling its grid (which would lose sub-cell shifts or
    blur the map). The grid covers the cells that saw detections; should a long pan stretch it
    past ``MAX_SIDE`` cells, it starts again around the current detections."""

    MAX_SIDE = 1024

    def __init__(self, tau_s: float, cell_px: float, threshold: float) -> None:
        self.tau_s, self.cell, self.threshold = float(tau_s), float(cell_px), float(threshold)
        self.reset()

    def reset(self) -> None:
        self.grid = np.zeros((0, 0))                  # [row, column] share of time
        self.origin = np.zeros(2, np.int64)           # (column, row) cell of grid[0, 0]
        self.to_map = np.eye(3)                       # current frame pixels -> map pixels

    def _cells(self, centres: np.ndarray) -> np.ndarray:
        """(N, 2) int64 (column, row) map cells of (N, 2) frame-pixel centres."""
        p = np.asarray(centres, np.float64).reshape(-1, 2)
        p = p @ self.to_map[:2, :2].T + self.to_map[:2, 2]
        return np.floor(p / self.cell).astype(np.int64)

    def _lookup(self, cells: np.ndarray) -> np.ndarray:
        idx = cells - self.origin
        h, w = self.grid.shape
        ok = (idx[:, 0] >= 0) & (idx[:, 0] < w) & (idx[:, 1] >= 0) & (idx[:, 1] < h)
        out = np.zeros(len(cells))
        out[ok] = self.grid[idx[ok, 1], idx[ok, 0]]
        return out

    def value(self, centres: np.ndarray) -> np.ndarray:
        """(N,) the map at each centre's own cell, now."""
        return self._lookup(self._cells(centres))

    def busy(self, centres: np.ndarray) -> np.ndarray:
        """(N,) bool: the 3x3 cells around each centre hold a value above the threshold."""
        if not self.grid.size or not len(centres):
            return np.zeros(len(centres), bool)
        cells = self._cells(centres)
        peak = np.zeros(len(cells))
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                np.maximum(peak, self._lookup(cells + (dx, dy)), out=peak)
        return peak > self.threshold

    def add(self, centres: np.ndarray, dt: float) -> None:
        """Advance the map by ``dt`` seconds (every cell decays by exp(-dt/tau)) and add this
        frame's detections: their cells gain 1 - exp(-dt/tau) (at most once per cell)."""
        if not dt > 0:
            return
        w = 1.0 - math.exp(-dt / self.tau_s)
        self.grid *= 1.0 - w
        if not len(centres):
            return
        cells = self._cells(centres)
        self._cover(cells)
        idx = cells - self.origin
        self.grid[idx[:, 1], idx[:, 0]] += w  # repeated cells: added once

    def _cover(self, cells: np.ndarray) -> None:
        """Grow the grid to hold ``cells`` (or start it again around them, see the class)."""
        h, w = self.grid.shape
        lo, hi = cells.min(axis=0), cells.max(axis=0) + 1
        if self.grid.size:
            lo, hi = np.minimum(lo, self.origin), np.maximum(hi, self.origin + (w, h))
        if (hi - lo).max() > self.MAX_SIDE:
            self.grid = np.zeros((0, 0))
            lo, hi = cells.min(axis=0), cells.max(axis=0) + 1
            h = w = 0
        if self.grid.size and (lo == self.origin).all() and (hi == self.origin + (w, h)).all():
            return
        grown = np.zeros((int(hi[1] - lo[1]), int(hi[0] - lo[0])))
        if self.grid.size:
            off = self.origin - lo
            grown[off[1]:off[1] + h, off[0]:off[0] + w] = self.grid
        self.grid, self.origin = grown, lo

    def warp(self, m: np.ndarray) -> None:
        """The picture moved: ``m`` (2, 3) affine from the previous frame's pixels to this
        one's. Later positions are carried back to the map's frame through its inverse."""
        fwd = np.vstack([np.asarray(m, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])
        try:
            self.to_map = self.to_map @ np.linalg.inv(fwd)
        except np.linalg.LinAlgError:
            pass


# --------------------------------------------------------------------------------------------
# Camera motion
# --------------------------------------------------------------------------------------------
class CameraMotion:
    """Global frame-to-frame motion of the picture (a pan, tilt, roll or zoom of the camera)
    from sparse optical flow: corners of the previous frame (``cv2.goodFeaturesToTrack``),
    followed into the current one (``cv2.calcOpticalFlowPyrLK``), a similarity transform fitted
    with RANSAC (``cv2.estimateAffinePartial2D``), so small moving targets are outliers.
    Works on a copy shrunk to at most ``max_width`` px wide; results in full-frame pixels.

    :meth:`estimate` returns the (2, 3) affine map from the previous frame's pixels to this
    one's, or None for the first frame and when too few points agree (then the tracker
    predicts without compensation). ``failures`` counts the latter."""

    def __init__(self, max_width: int = 320, max_corners: int = 150, quality: float = 0.01,
                 min_distance: int = 8, ransac_px: float = 1.0, min_inliers: int = 12) -> None:
        self.max_width, self.max_corners, self.quality = max_width, max_corners, quality
        self.min_distance, self.ransac_px, self.min_inliers = min_distance, ransac_px, min_inliers
        self._prev: Optional[np.ndarray] = None
        self._scale = 1.0
        self.failures = 0

    def reset(self) -> None:
        self._prev = None

    def estimate(self, grey: np.ndarray) -> Optional[np.ndarray]:
        """Motion from the previous call's frame to ``grey`` ((H, W) uint8), see the class."""
        import cv2

        h, w = grey.shape[:2]
        scale = min(1.0, self.max_width / float(w))
        small = grey if scale == 1.0 else cv2.resize(grey, (max(1, int(round(w * scale))),
                                                            max(1, int(round(h * scale)))),
                                                     interpolation=cv2.INTER_AREA)
        prev, self._prev = self._prev, small
        if prev is None or prev.shape != small.shape:
            return None
        pts = cv2.goodFeaturesToTrack(prev, self.max_corners, self.quality, self.min_distance,
                                      blockSize=7)
        if pts is None or len(pts) < self.min_inliers:
            self.failures += 1
            return None
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, small, pts, None, winSize=(21, 21),
                                                  maxLevel=3)
        good = status.reshape(-1) == 1
        if good.sum() < self.min_inliers:
            self.failures += 1
            return None
        m, inliers = cv2.estimateAffinePartial2D(pts[good], nxt[good], method=cv2.RANSAC,
                                                 ransacReprojThreshold=self.ransac_px)
        if m is None or inliers is None or int(inliers.sum()) < self.min_inliers:
            self.failures += 1
            return None
        m = m.astype(np.float64)
        m[:, 2] /= scale  # a similarity: only the translation scales with the image
        return m


def parse_confirm(text: str) -> Tuple[int, int]:
    """'3/5' -> (3, 5); ValueError with a one-line reason."""
    try:
        m, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--track-confirm takes M/N (e.g. 3/5), got {text!r}") from None
    if not 1 <= m <= n <= 16:
        raise ValueError(f"--track-confirm {text}: needs 1 <= M <= N <= 16")
    return m, n



# --track-* option (argparse dest) -> TrackerConfig field, for the options that copy a number
OPTION_FIELDS: Dict[str, str] = {"track_gate": "gate_px", "track_coast": "coast_s",
                                 "track_score": "min_score",
                                 "track_min_hit_rate": "min_hit_rate",
                                 "track_min_move": "min_move_px",
                                 "track_clutter": "clutter_s",
                                 "track_clutter_cell": "clutter_cell_px",
                                 "track_clutter_max": "clutter_max",
                                 "track_revive": "revive_s"}


def config_from_options(options: object) -> "TrackerConfig":
    """A checked TrackerConfig from an argparse namespace's ``--track-*`` values (None or a
    missing attribute = the default); ValueError for a bad value."""
    kw: Dict[str, object] = {f: getattr(options, o) for o, f in OPTION_FIELDS.items()
                             if getattr(options, o, None) is not None}
    if getattr(options, "track_motion", None) is not None:
        kw["motion"] = options.track_motion == "on"
    if getattr(options, "track_confirm", None) is not None:
        kw["confirm_m"], kw["confirm_n"] = parse_confirm(options.track_confirm)
    return TrackerConfig(**kw).check()

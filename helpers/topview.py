"""An offline stand-in for TVPR: people seen by a ceiling camera over an office floor, written as raw frames.

It writes the raw layout the preparation step reads (one folder of PNG frames per video, one
annotations.csv of square boxes) and knows nothing of the rest of the project.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

REFERENCE_SIZE = (480, 640)  # TVPR frame (height, width); every length below is in its pixels
MIN_FRAME_SIZE = (48, 64)
HEADER = ("video", "frame", "person_id", "x", "y", "size")
SUPERSAMPLE = 2       # draw at twice the size and average down: anti-aliasing at little cost
LEAN = 0.03           # perspective: how far the head sits outward of the shoulders, per pixel off centre
COMPANIONS = 0.6      # chance that two people of a video walk through together
PAIR_SHARE = 0.7      # chance that a still of companions shows both of them
MAX_OVERLAP = 0.2     # two walkers' boxes may share this much of the smaller box

Colour = tuple[int, int, int]

# (colour, weight) tables. Dark and neutral clothes dominate, as in an office, so look-alikes happen.
TOPS = [((28, 28, 30), 10), ((62, 64, 68), 7), ((120, 122, 126), 6), ((196, 196, 192), 4),
        ((232, 232, 226), 5), ((32, 42, 78), 7), ((58, 88, 150), 4), ((120, 156, 200), 3),
        ((72, 98, 134), 3), ((38, 70, 50), 3), ((98, 106, 62), 2), ((152, 32, 40), 3), ((98, 30, 42), 2),
        ((192, 172, 132), 3), ((108, 78, 54), 2), ((204, 162, 46), 1), ((214, 142, 164), 2),
        ((206, 96, 44), 1), ((92, 62, 114), 1)]
COATS = [((26, 26, 28), 8), ((58, 60, 64), 5), ((34, 40, 66), 5), ((168, 128, 82), 3), ((84, 88, 58), 2),
         ((96, 34, 40), 1), ((132, 132, 130), 3)]
TROUSERS = [((48, 66, 104), 8), ((32, 40, 64), 5), ((28, 28, 30), 7), ((92, 94, 98), 3),
            ((168, 150, 112), 2), ((96, 72, 52), 1)]
SHOES = [((24, 24, 24), 6), ((78, 54, 36), 3), ((226, 226, 220), 3), ((112, 114, 118), 2), ((160, 44, 44), 1)]
SKIN = [((238, 198, 168), 3), ((224, 174, 136), 4), ((198, 142, 104), 2), ((160, 110, 76), 1),
        ((116, 78, 54), 1), ((86, 58, 40), 1)]
# TVPR: 86 of 100 dark-haired, 12 light, 2 hairless; a few dyed heads here
HAIR = [((22, 19, 17), 34), ((50, 35, 25), 30), ((90, 62, 40), 16), ((186, 152, 98), 8),
        ((150, 146, 140), 4), ((138, 64, 34), 3), ((112, 52, 124), 1), ((52, 74, 146), 1),
        ((206, 92, 140), 1)]
ACCENTS = TOPS + [((200, 40, 48), 3), ((230, 190, 60), 2), ((60, 120, 190), 3), ((90, 140, 80), 2)]


@dataclass(frozen=True)
class Person:
    """One identity's look from above; lengths in pixels of a 640x480 frame."""
    person_id: int
    shoulders: float            # shoulder width
    depth: float                # chest to back
    head: tuple[float, float]   # length (front to back), width
    skin: Colour
    hair: Colour
    hair_length: str            # "short" | "long" | "none"
    top: Colour                 # shirt, sweater or coat
    top2: Colour                # second colour of the print
    pattern: str                # "plain" | "stripes" | "checks" | "two-tone"
    pattern_period: float
    pattern_angle: float
    coat: bool
    short_sleeves: bool
    trousers: Colour
    shoes: Colour
    headwear: str               # "none" | "cap" | "beanie" | "hood"
    headwear_colour: Colour
    scarf: Colour | None
    bag: str                    # "none" | "backpack" | "shoulder"
    bag_colour: Colour
    bag_side: int               # which shoulder carries the bag: -1 or +1
    stride: float               # how far the feet reach, in shoulder widths
    swing: float                # how far the hands swing, in shoulder widths


@dataclass
class Placement:
    """A rendered person and where it lands in the frame, with its annotated box."""
    person_id: int
    patch: np.ndarray           # (h, w, 4) float32 RGBA in [0, 1], straight alpha
    left: int
    top: int
    box: tuple[int, int, int]   # x, y (top-left corner), size


@dataclass
class Office:
    """One office floor; each video's camera sees a different window of it."""
    floor: np.ndarray           # (PH, PW, 3) float32 floor colour before lighting
    light: np.ndarray           # (PH, PW) float32 illumination by ceiling lights and windows
    markings: list              # flat things on the floor: (kind, geometry, colour, width, lift), plan pixels
    shapes: list                # furniture that stays put, drawn over the shadows; lift > 0 casts one
    chair_spots: list           # (x, y, angle) where desk chairs usually stand
    frame_size: tuple[int, int]
    scale: float


def _pick(rng, table) -> Colour:
    colours, weights = zip(*table)
    p = np.asarray(weights, dtype=float)
    return colours[rng.choice(len(colours), p=p / p.sum())]


def _jitter(rng, colour, amount=9.0) -> Colour:
    return tuple(int(v) for v in np.clip(np.asarray(colour) + rng.normal(0, amount, 3), 0, 255))


def _tone(colour, factor) -> Colour:
    return tuple(int(min(255, max(0, v * factor))) for v in colour)


def sample_people(rng: np.random.Generator, n: int) -> list[Person]:
    """n identities drawn one after another, so the first k are the same whatever n is."""
    people = []
    for pid in range(1, n + 1):
        height = rng.uniform(0.9, 1.12)  # taller people are nearer the camera and look bigger
        coat = bool(rng.random() < 0.18)
        shoulders = height * rng.uniform(106, 152) + (8 if coat else 0)
        top = _jitter(rng, _pick(rng, COATS if coat else TOPS))
        top2 = _jitter(rng, _pick(rng, TOPS))
        pattern = str(rng.choice(["plain", "stripes", "checks", "two-tone"],
                                 p=[0.85, 0.0, 0.05, 0.10] if coat else [0.55, 0.18, 0.12, 0.15]))
        hair_length = str(rng.choice(["short", "long", "none"], p=[0.55, 0.43, 0.02]))
        headwear = str(rng.choice(["none", "cap", "beanie", "hood"],
                                  p=[0.68, 0.05, 0.12, 0.15] if coat else [0.86, 0.06, 0.04, 0.04]))
        head_length = height * rng.uniform(47, 56)
        # a hood belongs to the top; caps and beanies add a colour of their own
        headwear_colour = top if headwear == "hood" else _jitter(rng, _pick(rng, ACCENTS))
        people.append(Person(
            person_id=pid, shoulders=shoulders, depth=shoulders * rng.uniform(0.5, 0.6) + (6 if coat else 0),
            head=(head_length, head_length * rng.uniform(0.74, 0.84)),
            skin=_jitter(rng, _pick(rng, SKIN), 6), hair=_jitter(rng, _pick(rng, HAIR), 6),
            hair_length=hair_length, top=top, top2=top2, pattern=pattern,
            pattern_period=rng.uniform(9, 22), pattern_angle=rng.uniform(0, math.pi),
            coat=coat, short_sleeves=bool(not coat and rng.random() < 0.35),
            trousers=_jitter(rng, _pick(rng, TROUSERS)), shoes=_jitter(rng, _pick(rng, SHOES), 6),
            headwear=headwear, headwear_colour=headwear_colour,
            scarf=_jitter(rng, _pick(rng, ACCENTS)) if rng.random() < (0.25 if coat else 0.03) else None,
            bag=str(rng.choice(["none", "backpack", "shoulder"], p=[0.6, 0.25, 0.15])),
            bag_colour=_jitter(rng, _pick(rng, COATS + TOPS[:8])), bag_side=int(rng.choice([-1, 1])),
            stride=rng.uniform(0.2, 0.36), swing=rng.uniform(0.12, 0.3)))
    return people


def _superellipse(cx, cy, rx, ry, angle=0.0, power=2.6, n=40):
    """Points of a rounded box (power > 2) or ellipse (power 2), turned by angle."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = rx * np.sign(c) * np.abs(c) ** (2 / power)
    y = ry * np.sign(s) * np.abs(s) ** (2 / power)
    ca, sa = math.cos(angle), math.sin(angle)
    return list(zip(cx + x * ca - y * sa, cy + x * sa + y * ca))


def _print(p: Person, size: int, unit: float) -> Image.Image:
    """The garment's print in body coordinates, so stripes turn with the wearer."""
    axis = (np.arange(size, dtype=np.float32) - size / 2) / unit
    x, y = axis[None, :], axis[:, None]
    ca, sa = math.cos(p.pattern_angle), math.sin(p.pattern_angle)
    if p.pattern == "two-tone":  # contrasting shoulders and sleeves
        mix = np.broadcast_to(np.abs(y) > 0.3 * p.shoulders, (size, size)).astype(np.float32)
    else:
        mix = ((x * ca + y * sa) / p.pattern_period % 1 < 0.5).astype(np.float32)
        if p.pattern == "checks":
            mix = 0.5 * (mix + ((y * ca - x * sa) / p.pattern_period % 1 < 0.5))
    a, b = np.asarray(p.top, np.float32), np.asarray(p.top2, np.float32)
    return Image.fromarray((a + (b - a) * mix[..., None]).astype(np.uint8))


def render_person(p: Person, heading: float, phase: float, lean=(0.0, 0.0), scale: float = 1.0):
    """The person from above as float32 RGBA, facing heading (radians); returns (patch, centre offset).

    phase is the walking cycle; lean shifts the head outward, and the feet 4x as far inward (perspective).
    """
    W, D = p.shoulders, p.depth
    hl, hw = p.head
    c, s = math.cos(heading), math.sin(heading)
    lx, ly = lean[0] * c + lean[1] * s, -lean[0] * s + lean[1] * c  # lean in body coordinates
    r = math.ceil((0.74 * W + 4.2 * math.hypot(lx, ly) + 4) * scale)
    u, R = scale * SUPERSAMPLE, r * SUPERSAMPLE
    img = Image.new("RGBA", (2 * R, 2 * R), (*p.top, 0))
    d = ImageDraw.Draw(img)

    def xy(x, y):
        return R + x * u, R + y * u

    def oval(x, y, rx, ry, colour):
        d.ellipse([xy(x - rx, y - ry), xy(x + rx, y + ry)], fill=(*colour, 255))

    def limb(x0, y0, x1, y1, width, colour):
        d.line([xy(x0, y0), xy(x1, y1)], fill=(*colour, 255), width=max(1, round(width * u)))
        oval(x0, y0, width / 2, width / 2, colour)
        oval(x1, y1, width / 2, width / 2, colour)

    def poly(points, colour):
        d.polygon([xy(x, y) for x, y in points], fill=(*colour, 255))

    step = math.sin(phase)
    sleeve = p.top2 if p.pattern == "two-tone" else p.top
    for side in (-1, 1):  # mid-stride, a shoe and trouser leg show in front and behind
        foot = (side * step * p.stride * W - 4 * lx, side * 0.17 * W - 4 * ly)
        oval(foot[0] + 0.08 * W, foot[1], 0.14 * W, 0.06 * W, p.shoes)
        limb(-0.03 * W, side * 0.15 * W, *foot, 0.17 * W, p.trousers)
    if p.bag == "shoulder":
        y = p.bag_side * 0.55 * W
        d.rounded_rectangle([xy(-0.22 * W, y - 0.08 * W), xy(0.12 * W, y + 0.08 * W)],
                            radius=0.03 * W * u, fill=(*p.bag_colour, 255))
    torso = _superellipse(-0.03 * W, 0, D / 2, 0.43 * W)
    if p.pattern == "plain":
        poly(torso, p.top)
    else:
        mask = Image.new("L", img.size, 0)
        ImageDraw.Draw(mask).polygon([xy(x, y) for x, y in torso], fill=255)
        img.paste(_print(p, 2 * R, u), (0, 0), mask)
    for side in (-1, 1):  # arms hang beside the chest and swing against the legs
        hand = (-side * step * p.swing * W, side * 0.45 * W)
        joint = (-0.03 * W, side * 0.41 * W)
        elbow = (0.5 * (joint[0] + hand[0]), 0.5 * (joint[1] + hand[1]))
        limb(*joint, *hand, 0.185 * W, _tone(sleeve, 0.72))  # the fold between arm and chest
        limb(*joint, *hand, 0.16 * W, p.skin if p.short_sleeves else sleeve)
        if p.short_sleeves:
            limb(*joint, *elbow, 0.18 * W, sleeve)
        oval(hand[0] + math.copysign(0.04 * W, hand[0]), hand[1], 0.065 * W, 0.05 * W, p.skin)
    hx, hy = 0.05 * W + lx, ly
    if p.coat:  # raised collar around the neck
        oval(hx - 0.1 * hl, hy, 0.62 * hl, 0.72 * hw, _tone(p.top, 0.75))
    if p.bag == "backpack":
        back = -D / 2 - 0.03 * W
        d.rounded_rectangle([xy(back - 0.19 * W, -0.27 * W), xy(back + 0.14 * W, 0.27 * W)],
                            radius=0.07 * W * u, fill=(*p.bag_colour, 255))
        d.rounded_rectangle([xy(back - 0.13 * W, -0.2 * W), xy(back + 0.02 * W, 0.2 * W)],
                            radius=0.05 * W * u, fill=(*_tone(p.bag_colour, 0.8), 255))
        for side in (-1, 1):
            limb(back + 0.12 * W, side * 0.22 * W, D / 2 - 0.12 * W, side * 0.2 * W, 0.05 * W,
                 _tone(p.bag_colour, 0.7))
    elif p.bag == "shoulder":
        limb(0.16 * W, -p.bag_side * 0.3 * W, -0.14 * W, p.bag_side * 0.44 * W, 0.045 * W,
             _tone(p.bag_colour, 0.7))
    if p.scarf:
        oval(hx - 0.05 * hl, hy, 0.64 * hl, 0.7 * hw, p.scarf)
        limb(hx + 0.4 * hl, hy + 0.2 * hw, hx + 0.45 * hl + 0.2 * W, hy + 0.25 * hw, 0.1 * W,
             _tone(p.scarf, 0.85))
    hood = p.headwear == "hood"
    if hood:  # hood up: fabric all round, a little face at the front
        oval(hx - 0.15 * hl, hy, 0.66 * hl, 0.62 * hw, _tone(p.top, 0.85))
        oval(hx + 0.3 * hl, hy, 0.2 * hl, 0.28 * hw, p.skin)
        d.arc([xy(hx - 0.4 * hl, hy - 0.45 * hw), xy(hx + 0.45 * hl, hy + 0.45 * hw)], -70, 70,
              fill=(*_tone(p.top, 0.6), 255), width=max(1, round(0.03 * W * u)))
    else:
        if p.hair_length == "long":  # hair falls over the back and onto the shoulders
            oval(hx - 0.45 * hl, hy, 0.5 * hl, 0.52 * hw, p.hair)
            for side in (-1, 1):
                oval(hx - 0.3 * hl, hy + side * 0.45 * hw, 0.32 * hl, 0.2 * hw, p.hair)
        oval(hx, hy, hl / 2, hw / 2, p.skin)
        if p.hair_length == "none":
            oval(hx - 0.08 * hl, hy - 0.1 * hw, 0.14 * hl, 0.12 * hw, _tone(p.skin, 1.12))
        else:
            for side in (-1, 1):
                oval(hx - 0.04 * hl, hy + side * 0.48 * hw, 0.08 * hl, 0.08 * hl, p.skin)  # ears
            oval(hx - 0.08 * hl, hy, 0.47 * hl, 0.53 * hw, p.hair)
            if p.hair_length == "long":
                limb(hx + 0.3 * hl, hy + 0.08 * hw, hx - 0.4 * hl, hy + 0.04 * hw, 0.025 * W,
                     _tone(p.hair, 0.65))
            else:
                d.arc([xy(hx - 0.35 * hl, hy - 0.22 * hw), xy(hx + 0.05 * hl, hy + 0.22 * hw)], 120, 300,
                      fill=(*_tone(p.hair, 1.35), 255), width=max(1, round(0.02 * W * u)))
    if p.headwear == "cap":
        oval(hx + 0.45 * hl, hy, 0.24 * hl, 0.4 * hw, _tone(p.headwear_colour, 0.8))
        oval(hx - 0.04 * hl, hy, 0.5 * hl, 0.54 * hw, p.headwear_colour)
        oval(hx - 0.04 * hl, hy, 0.05 * hl, 0.05 * hl, _tone(p.headwear_colour, 0.7))
    elif p.headwear == "beanie":
        oval(hx - 0.05 * hl, hy, 0.5 * hl, 0.55 * hw, p.headwear_colour)
        for k in (0.38, 0.25):
            d.ellipse([xy(hx - 0.05 * hl - k * hl, hy - k * hw), xy(hx - 0.05 * hl + k * hl, hy + k * hw)],
                      outline=(*_tone(p.headwear_colour, 0.75), 255), width=max(1, round(0.015 * W * u)))

    img = img.rotate(-math.degrees(heading), resample=Image.Resampling.BILINEAR).reduce(SUPERSAMPLE)
    patch = np.asarray(img, dtype=np.float32) / 255
    # surfaces turn away from the overhead light towards the silhouette, and the head is nearest to it
    alpha = Image.fromarray((patch[..., 3] * 255).astype(np.uint8))
    soft = np.asarray(alpha.filter(ImageFilter.GaussianBlur(0.05 * W * scale)), dtype=np.float32) / 255
    axis = (np.arange(2 * r, dtype=np.float32) - r) / (0.6 * W * scale)
    dome = np.clip(1.1 - 0.3 * (axis[None, :] ** 2 + axis[:, None] ** 2), 0.75, None)
    patch[..., :3] = np.minimum(patch[..., :3] * ((0.7 + 0.3 * soft) * dome)[..., None], 1)
    return patch, r


def place(p: Person, centre, heading: float, phase: float, frame_size, scale: float,
          rng: np.random.Generator) -> Placement:
    """Render p near centre (x, y) and annotate it like a hand annotator; both kept fully in the frame."""
    H, W = frame_size
    lean = (LEAN * (centre[0] - W / 2) / scale, LEAN * (centre[1] - H / 2) / scale)
    patch, r = render_person(p, heading, phase, lean, scale)
    ys, xs = np.nonzero(patch[..., 3] > 0.5)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    size = min(int(round(max(x1 - x0, y1 - y0) * rng.uniform(1.0, 1.2))), H, W)
    # a hand-drawn box is centred on the person to within a pixel or two
    bx = (x0 + x1) / 2 + rng.normal(0, 0.01 * size)
    by = (y0 + y1) / 2 + rng.normal(0, 0.01 * size)
    left, top = int(round(centre[0])) - r, int(round(centre[1])) - r
    box_x, box_y = int(round(left + bx - size / 2)), int(round(top + by - size / 2))
    dx = min(max(box_x, 0), W - size) - box_x  # shift person and box together back inside the frame
    dy = min(max(box_y, 0), H - size) - box_y
    return Placement(p.person_id, patch, left + dx, top + dy, (box_x + dx, box_y + dy, size))


# --- the office -------------------------------------------------------------------------------------

def _smooth_noise(rng, shape, cell) -> np.ndarray:
    """Unit Gaussian noise that varies over about cell = (cy, cx) pixels."""
    h, w = shape
    small = rng.standard_normal((int(h / cell[0]) + 2, int(w / cell[1]) + 2)).astype(np.float32)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def _rect(cx, cy, w, h, angle=0.0):
    return _superellipse(cx, cy, w / 2, h / 2, angle, power=40, n=36)


# Furniture is a list of shapes (kind, geometry, colour, line width, lift); lift > 0 casts a shadow.
def _poly(points, colour, lift=0):
    return ("poly", points, colour, 0, lift)


def _disc(x, y, r, colour, lift=0):
    return ("ellipse", [x - r, y - r, x + r, y + r], colour, 0, lift)


def _line(points, colour, width, lift=0):
    return ("line", points, colour, width, lift)


def _desk(rng, x0, y0, x1, y1, user_below, s):
    """A desk from above with monitors, keyboards and clutter; user_below says which side the chair is on."""
    top = _pick(rng, [((198, 172, 132), 2), ((226, 224, 218), 2), ((168, 170, 168), 1)])
    out = [_poly(_rect((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), top, lift=3)]
    sign = 1 if user_below else -1
    back, front = (y0, y1) if user_below else (y1, y0)
    for k in range(int(rng.integers(1, 3))):
        mx = x0 + (x1 - x0) * (0.3 + 0.4 * k) + rng.normal(0, 10 * s)
        out += [_poly(_rect(mx, back + sign * 30 * s, 150 * s, 14 * s, rng.normal(0, 0.08)), (30, 30, 32)),
                _poly(_rect(mx, back + sign * 44 * s, 46 * s, 22 * s), (60, 60, 62)),
                _poly(_rect(mx, front - sign * 50 * s, 120 * s, 36 * s, rng.normal(0, 0.1)), (52, 52, 56)),
                _poly(_superellipse(mx + 88 * s, front - sign * 50 * s, 8 * s, 12 * s, 0, 2, 12),
                      (70, 70, 74))]  # a mouse
    for _ in range(int(rng.integers(1, 4))):  # papers and folders
        px = rng.uniform(x0 + 40 * s, x1 - 40 * s)
        py = rng.uniform(min(y0, y1) + 40 * s, max(y0, y1) - 40 * s)
        colour = _pick(rng, [((240, 240, 236), 3), ((200, 60, 50), 1), ((60, 90, 160), 1)])
        out.append(_poly(_rect(px, py, 62 * s, 84 * s, rng.uniform(0, 3)), colour))
    mx, my = rng.uniform(x0 + 30 * s, x1 - 30 * s), (y0 + y1) / 2
    return out + [_disc(mx, my, 12 * s, (236, 236, 230)), _disc(mx, my, 8 * s, (60, 40, 30))]  # a mug


def _chair(rng, x, y, angle, s):
    """An office chair from above, its user facing angle: five-star base, seat, backrest, armrests."""
    s *= 0.85  # a seat is about as wide as a person's shoulders
    colour = _jitter(rng, _pick(rng, [((30, 30, 34), 4), ((40, 52, 84), 2), ((90, 92, 96), 2),
                                      ((120, 40, 40), 1)]), 5)
    out = []
    for k in range(5):
        a = angle + 0.3 + k * 2 * math.pi / 5
        ex, ey = x + 60 * s * math.cos(a), y + 60 * s * math.sin(a)
        out += [_line([(x, y), (ex, ey)], (44, 44, 46), 9 * s, lift=1),
                _disc(ex, ey, 7 * s, (20, 20, 20), lift=1)]
    ca, sa = math.cos(angle), math.sin(angle)
    out.append(_poly(_superellipse(x, y, 48 * s, 50 * s, angle, 3), colour, lift=2))
    backrest = _rect(x - 50 * s * ca, y - 50 * s * sa, 20 * s, 96 * s, angle)
    out.append(_poly(backrest, _tone(colour, 0.75), lift=3))
    for side in (-1, 1):
        arm = _rect(x - 52 * s * sa * side, y + 52 * s * ca * side, 56 * s, 11 * s, angle)
        out.append(_poly(arm, (36, 36, 38), lift=2))
    return out


def _coat_on_chair(rng, x, y, angle, s):
    """A coat hung over a chair back: person-coloured, person-sized, not a person."""
    s *= 0.85
    colour = _jitter(rng, _pick(rng, COATS + TOPS))
    ca, sa = math.cos(angle), math.sin(angle)
    cx, cy = x - 22 * s * ca, y - 22 * s * sa
    out = [_poly(_superellipse(cx, cy, 44 * s, 58 * s, angle, 2.6), colour, lift=3)]
    for side in (-1, 1):  # sleeves hanging down the sides
        sleeve = _rect(cx + 10 * s * ca - 58 * s * sa * side, cy + 10 * s * sa + 58 * s * ca * side,
                       70 * s, 18 * s, angle + side * 0.3)
        out.append(_poly(sleeve, _tone(colour, 0.9), lift=3))
    bx, by = cx - 40 * s * ca, cy - 40 * s * sa  # the collar over the backrest
    out.append(_line([(bx - 30 * s * sa, by + 30 * s * ca), (bx + 30 * s * sa, by - 30 * s * ca)],
                     _tone(colour, 0.7), 8 * s, lift=3))
    return out


def _bin(rng, x, y, s):
    """A round bin: a ring like a head seen from above."""
    r = rng.uniform(28, 40) * s
    colour = _pick(rng, [((40, 40, 42), 3), ((150, 150, 152), 2), ((40, 70, 140), 1), ((180, 60, 40), 1)])
    out = [_disc(x, y, r, colour, lift=2), _disc(x, y, r - 5 * s, _tone(colour, 0.55))]
    for _ in range(int(rng.integers(0, 4))):  # crumpled paper inside
        px, py = x + rng.uniform(-0.4, 0.4) * r, y + rng.uniform(-0.4, 0.4) * r
        out.append(_poly(_superellipse(px, py, 10 * s, 8 * s, rng.uniform(0, 3), 2, 7), (230, 230, 226)))
    return out


def _plant(rng, x, y, s):
    """A potted plant from above: pot rim, soil, a rosette of leaves."""
    pot = _pick(rng, [((176, 96, 62), 2), ((226, 226, 222), 1), ((80, 80, 84), 1)])
    out = [_disc(x, y, 36 * s, pot, lift=2), _disc(x, y, 29 * s, (58, 44, 34))]
    for a in np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(9, 15)))):
        length = rng.uniform(40, 88) * s
        green = _jitter(rng, _pick(rng, [((46, 98, 44), 2), ((74, 132, 54), 2), ((32, 76, 40), 1)]), 8)
        leaf = _superellipse(x + 0.55 * length * math.cos(a), y + 0.55 * length * math.sin(a),
                             0.55 * length, rng.uniform(8, 14) * s, a, 2, 16)
        out.append(_poly(leaf, green, lift=2))
    return out


def _floor_bag(rng, x, y, s):
    colour = _jitter(rng, _pick(rng, COATS + TOPS))
    a = rng.uniform(0, np.pi)
    return [_poly(_superellipse(x, y, 40 * s, 26 * s, a, 4), colour, lift=1),
            _line(_superellipse(x, y, 30 * s, 10 * s, a + 0.2, 2, 9)[:6], _tone(colour, 0.6), 5 * s, lift=1)]


def _box(rng, x, y, s):
    a = rng.uniform(0, np.pi)
    dx, dy = 55 * s * math.cos(a), 55 * s * math.sin(a)
    return [_poly(_rect(x, y, 110 * s, 80 * s, a), (170, 128, 84), lift=2),
            _line([(x - dx, y - dy), (x + dx, y + dy)], (196, 172, 130), 10 * s)]  # packing tape


def _cable(rng, x, y, s, steps=12):
    """A cable wandering across the floor."""
    points, a = [(x, y)], rng.uniform(0, 2 * np.pi)
    for _ in range(steps):
        a += rng.normal(0, 0.5)
        x, y = x + 22 * s * math.cos(a), y + 22 * s * math.sin(a)
        points.append((x, y))
    return [_line(points, _pick(rng, [((20, 20, 20), 3), ((200, 200, 196), 1), ((90, 90, 94), 1)]), 3 * s)]


def office_plan(rng: np.random.Generator, frame_size=REFERENCE_SIZE) -> Office:
    """One office: carpet tiles around a vinyl corridor, desks on both sides, a wall with a door."""
    H, W = frame_size
    s = min(H / REFERENCE_SIZE[0], W / REFERENCE_SIZE[1])
    PH, PW = round(1.35 * H), round(1.6 * W)
    c0, c1 = round(0.3 * PH), round(0.74 * PH)  # corridor rows
    yy, xx = np.mgrid[0:PH, 0:PW].astype(np.float32)

    # carpet tiles whose pile runs alternately along x and y
    carpet = np.asarray(_pick(rng, [((92, 98, 110), 1), ((112, 104, 96), 1), ((84, 88, 90), 1)]), np.float32)
    tile = 128 * s
    ty, tx = (yy // tile).astype(int), (xx // tile).astype(int)
    gains = rng.uniform(0.93, 1.07, (ty.max() + 1, tx.max() + 1)).astype(np.float32)
    along_x, along_y = _smooth_noise(rng, (PH, PW), (1, 7)), _smooth_noise(rng, (PH, PW), (7, 1))
    pile = np.where((tx + ty) % 2 == 0, along_x, along_y)
    shade = gains[ty, tx] * (1 + 0.05 * pile + 0.05 * _smooth_noise(rng, (PH, PW), (60 * s, 60 * s)))
    floor = carpet * shade[..., None] + 7 * rng.standard_normal((PH, PW, 1), dtype=np.float32)

    # vinyl tiles with grout lines and speckles along the corridor
    vinyl = np.asarray(_pick(rng, [((186, 180, 168), 1), ((162, 164, 162), 1), ((196, 190, 176), 1)]),
                       np.float32)
    vt = 80 * s
    grout = ((xx % vt) < max(1, 1.5 * s)) | ((yy % vt) < max(1, 1.5 * s))
    speck = (rng.random((PH, PW)) < 0.015) * rng.normal(0, 35, (PH, PW))
    mottled = 8 * _smooth_noise(rng, (PH, PW), (24 * s, 24 * s)) + speck - 28 * grout
    vinyl_floor = vinyl + (mottled + 4 * rng.standard_normal((PH, PW))).astype(np.float32)[..., None]
    floor = np.where(((yy >= c0) & (yy < c1))[..., None], vinyl_floor, floor)

    # ceiling lights in a row over the corridor, daylight from windows on one side
    light = np.full((PH, PW), 0.72, np.float32)
    for lx in np.arange(rng.uniform(0.15, 0.35), 1.0, 0.45) * PW:
        ly = rng.uniform(0.4, 0.6) * PH
        light += 0.38 * np.exp(-((xx - lx) ** 2 + (yy - ly) ** 2) / (2 * (260 * s) ** 2))
    light += 0.12 * (yy / PH if rng.random() < 0.5 else 1 - yy / PH)
    light /= light.max()

    edge = (150, 150, 150)  # metal strips where carpet meets vinyl
    markings = [_line([(0, c0), (PW, c0)], edge, 4 * s), _line([(0, c1), (PW, c1)], edge, 4 * s)]
    wall = 0.07 * H  # the top of a wall, seen from above, and a door in it
    door = rng.uniform(0.1, 0.8) * PW
    markings += [_poly(_rect(PW / 2, wall / 2, PW, wall), (212, 210, 204)),
                 _line([(0, wall), (PW, wall)], (120, 118, 112), 5 * s),
                 _poly(_rect(door, wall / 2, 200 * s, wall), (140, 100, 62))]
    mat_y = c0 + 80 * s
    markings.append(_poly(_rect(door, mat_y, 220 * s, 140 * s), (70, 64, 58)))
    for k in range(24):  # ribs of the door mat
        x = door + (k - 11.5) * 8.5 * s
        markings.append(_line([(x, mat_y - 62 * s), (x, mat_y + 62 * s)], (92, 86, 78), 3 * s))
    rx, ry = rng.uniform(0.1, 0.8) * PW, c1 - rng.uniform(0, 60) * s
    rug = _pick(rng, [((118, 62, 52), 1), ((66, 80, 104), 1), ((150, 138, 108), 1)])
    markings += [_poly(_rect(rx, ry, 250 * s, 170 * s), rug),
                 _poly(_rect(rx, ry, 214 * s, 134 * s), _tone(rug, 1.25)),
                 _poly(_superellipse(rx, ry, 80 * s, 50 * s, 0, 1, 4), _tone(rug, 0.75))]

    shapes, chair_spots = [], []
    for row_top, user_below in ((wall + 12 * s, True), (c1 + 50 * s, False)):
        x = rng.uniform(-0.1, 0.1) * W
        while x < PW:
            width = rng.uniform(300, 400) * s
            y0, y1 = (row_top, c0 + 30 * s) if user_below else (row_top, PH + 100 * s)
            shapes += _desk(rng, x, y0, x + width, y1, user_below, s)
            shapes += _cable(rng, x + width * rng.uniform(0.2, 0.8), y1 if user_below else y0, s)
            chair_y = y1 + 45 * s if user_below else y0 - 45 * s
            chair_spots.append((x + width / 2, chair_y, -math.pi / 2 if user_below else math.pi / 2))
            x += width + rng.uniform(90, 200) * s
    px, py = rng.uniform(0.2, 0.8) * PW, c1 + 10 * s
    shapes.append(_poly(_rect(px, py, 90 * s, 90 * s), (188, 188, 184), lift=5))  # a pillar
    shapes += _plant(rng, px + 110 * s, py - 10 * s, s)
    return Office(floor, light, markings, shapes, chair_spots, (H, W), s)


def _draw(draw, shapes, ox, oy, k, mask=False):
    """Draw shapes shifted by (ox, oy) and enlarged k times; a mask draws every shape in white."""
    for kind, geometry, colour, width, _ in shapes:
        fill = 255 if mask else colour
        if kind == "poly":
            draw.polygon([((x - ox) * k, (y - oy) * k) for x, y in geometry], fill=fill)
        elif kind == "ellipse":
            x0, y0, x1, y1 = geometry
            draw.ellipse([(min(x0, x1) - ox) * k, (min(y0, y1) - oy) * k, (max(x0, x1) - ox) * k,
                          (max(y0, y1) - oy) * k], fill=fill)
        else:
            draw.line([((x - ox) * k, (y - oy) * k) for x, y in geometry], fill=fill,
                      width=max(1, round(width * k)), joint="curve")


def video_background(rng: np.random.Generator, office: Office, video: int, videos: int):
    """One camera's view: its window of the office, chairs and clutter as they stood that day, its lighting.

    Returns (albedo (H, W, 3), lighting (H, W, 3)) as float32; a frame is roughly albedo x lighting.
    """
    H, W = office.frame_size
    PH, PW = office.floor.shape[:2]
    s, K = office.scale, SUPERSAMPLE
    ox = int((video + rng.uniform(0.2, 0.8)) / videos * (PW - W))  # cameras hung along the corridor
    oy = int(rng.integers(0, PH - H + 1))

    def inside(margin=0.0):
        return ox + rng.uniform(margin, W - margin), oy + rng.uniform(margin, H - margin)

    movable, chairs = [], []
    for x, y, a in office.chair_spots:
        if ox - 100 * s < x < ox + W + 100 * s and rng.random() < 0.8:
            chairs.append((x + rng.normal(0, 15 * s), y + rng.normal(0, 10 * s), a + rng.normal(0, 0.4)))
    chairs.append((*inside(60 * s), rng.uniform(0, 2 * np.pi)))  # and one left wherever someone pushed it
    for x, y, a in chairs:
        movable += _chair(rng, x, y, a, s)
    if rng.random() < 0.6:
        movable += _coat_on_chair(rng, *chairs[int(rng.integers(len(chairs)))], s)
    for _ in range(int(rng.integers(1, 3))):
        movable += _bin(rng, *inside(40 * s), s)
    if rng.random() < 0.5:
        movable += _plant(rng, *inside(50 * s), s)
    if rng.random() < 0.5:
        movable += _floor_bag(rng, *inside(40 * s), s)
    if rng.random() < 0.3:
        movable += _box(rng, *inside(60 * s), s)
    movable += _cable(rng, *inside(), s, steps=16)

    canvas = Image.fromarray(np.clip(office.floor[oy:oy + H, ox:ox + W], 0, 255).astype(np.uint8))
    canvas = canvas.resize((W * K, H * K), Image.Resampling.BILINEAR)
    # floor markings first, then soft shadows of raised things, then the things themselves
    _draw(ImageDraw.Draw(canvas), office.markings, ox, oy, K)
    shapes = office.shapes + movable
    mask = Image.new("L", canvas.size, 0)
    shift = rng.uniform(2, 6, 2) * s
    raised = [sh for sh in shapes if sh[4] > 0]
    _draw(ImageDraw.Draw(mask), raised, ox - shift[0], oy - shift[1], K, mask=True)
    mask = np.asarray(mask.filter(ImageFilter.GaussianBlur(6 * s * K)), dtype=np.float32) / 255
    shaded = np.asarray(canvas, dtype=np.float32) * (1 - 0.35 * mask[..., None])
    canvas = Image.fromarray(shaded.astype(np.uint8))
    _draw(ImageDraw.Draw(canvas), shapes, ox, oy, K)
    albedo = np.asarray(canvas.reduce(K), dtype=np.float32)

    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    radius = ((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2
    vignette = 1 - rng.uniform(0.1, 0.2) * radius  # lens fall-off towards the corners
    warmth = rng.normal(0, 0.04)
    colour = np.array([1 + warmth, 1, 1 - warmth], np.float32) * rng.uniform(0.9, 1.05)
    lighting = (office.light[oy:oy + H, ox:ox + W] * vignette)[..., None] * colour
    return albedo, lighting.astype(np.float32)


# --- frames -----------------------------------------------------------------------------------------

def _slices(left, top, h, w, H, W):
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + w, W), min(top + h, H)
    if x0 >= x1 or y0 >= y1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


def _soften(img: np.ndarray, w: float) -> np.ndarray:
    """Slight defocus: a separable [w, 1 - 2w, w] blur that repeats the border pixels."""
    for axis in (0, 1):
        x = np.moveaxis(img, axis, 0)
        out = (1 - 2 * w) * x
        out[1:] += w * x[:-1]
        out[:-1] += w * x[1:]
        out[0] += w * x[0]
        out[-1] += w * x[-1]
        img = np.moveaxis(out, 0, axis)
    return img


def render_frame(albedo: np.ndarray, lighting: np.ndarray, placements: list[Placement],
                 rng: np.random.Generator, scale: float) -> np.ndarray:
    """Put people on the background, then light, blur and sensor noise as the camera would; uint8 RGB."""
    img = albedo.copy()
    H, W = img.shape[:2]
    for pl in placements:
        h, w = pl.patch.shape[:2]
        alpha = Image.fromarray((pl.patch[..., 3] * 255).astype(np.uint8))
        shadow = np.asarray(alpha.filter(ImageFilter.GaussianBlur(7 * scale)), dtype=np.float32) / 255
        # the ceiling lights throw a soft shadow outward, away from the image centre
        sx = int(round(0.04 * (pl.left + w / 2 - W / 2) + 3 * scale))
        sy = int(round(0.04 * (pl.top + h / 2 - H / 2) + 3 * scale))
        where = _slices(pl.left + sx, pl.top + sy, h, w, H, W)
        if where:
            img[where[0]] *= 1 - 0.4 * shadow[where[1]][..., None]
        where = _slices(pl.left, pl.top, h, w, H, W)
        if where:
            patch = pl.patch[where[1]]
            a = patch[..., 3:]
            img[where[0]] = img[where[0]] * (1 - a) + 255 * patch[..., :3] * a
    warmth = rng.normal(0, 0.015)
    img *= lighting * (rng.uniform(0.92, 1.08) * np.array([1 + warmth, 1, 1 - warmth], np.float32))
    img = _soften(img, rng.uniform(0.06, 0.2))
    sigma = rng.uniform(2.0, 4.5)
    img += sigma * rng.standard_normal((H, W, 1), dtype=np.float32)
    img += 0.5 * sigma * rng.standard_normal((H, W, 3), dtype=np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --- who is where -----------------------------------------------------------------------------------

@dataclass
class Still:
    """One person's moment in a video: where, facing which way, how far through a stride."""
    person: int          # index into the people list
    centre: tuple[float, float]
    heading: float
    phase: float


def _walk_heading(rng):
    if rng.random() < 0.6:  # mostly along the corridor
        return rng.choice([0.0, math.pi]) + rng.normal(0, 0.35)
    return rng.uniform(0, 2 * math.pi)


def _walk(rng, person, p, heading, count, frame_size, scale, beside=None):
    """count stills along a straight walk across the frame (or beside a companion starting at beside).

    Returns the stills and where the walk starts.
    """
    H, W = frame_size
    margin = min(0.8 * p.shoulders * scale, 0.45 * min(H, W))
    direction = np.array([math.cos(heading), math.sin(heading)])
    if beside is None:
        start = np.array([rng.uniform(margin, W - margin), rng.uniform(margin, H - margin)])
    else:  # an arm's length or so to one side
        side = rng.choice([-1, 1]) * rng.uniform(1.8, 2.4) * p.shoulders * scale
        start = beside + side * np.array([-direction[1], direction[0]])
        start = np.clip(start, margin, [W - margin, H - margin])
    lo, hi = -1e9, 1e9  # the stretch of the line through start that keeps the person in the frame
    for k, size in ((0, W), (1, H)):
        if abs(direction[k]) > 1e-6:
            a, b = (margin - start[k]) / direction[k], (size - margin - start[k]) / direction[k]
            lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
    stills = []
    for j in range(count):
        t = lo + (j + rng.uniform(0.2, 0.8)) * (hi - lo) / count
        centre = tuple(float(v) for v in start + t * direction)
        stills.append(Still(person, centre, heading + rng.normal(0, 0.15), rng.uniform(0, 2 * np.pi)))
    return stills, start


def _schedule(rng, people, videos, stills, frame_size, scale):
    """Each person walks through one video, and back through the same or another; stills along each walk.

    Some come through with a companion, and only companions share frames, so that few people are tied
    together when frames are split by person. Returns, per video, a list of frames of one or two Stills.
    """
    n = len(people)
    order = rng.permutation(n)
    primary = np.empty(n, int)
    primary[order] = np.arange(n) % videos  # no video left empty
    companion = {}
    for v in range(videos):
        members = [int(i) for i in order if primary[i] == v]
        for a, b in zip(members[0::2], members[1::2]):
            if rng.random() < COMPANIONS:
                companion[a], companion[b] = b, a
    routes, starts, visits = {}, {}, [{} for _ in range(videos)]
    for i, p in enumerate(people):
        leader = min(i, companion.get(i, i))
        if leader not in routes:
            heading = _walk_heading(rng)
            routes[leader] = [(int(primary[i]), heading)]
            if rng.random() < 0.65:  # back the way they came
                routes[leader].append((int(primary[i]), heading + math.pi + rng.normal(0, 0.3)))
            else:
                routes[leader].append((int(rng.integers(videos)), _walk_heading(rng)))
        counts = [math.ceil(stills / 2), stills // 2]
        for w, ((video, heading), count) in enumerate(zip(routes[leader], counts)):
            if count:
                walk, start = _walk(rng, i, p, heading, count, frame_size, scale, starts.get((leader, w)))
                starts[leader, w] = start
                visits[video].setdefault((leader, w), []).append(walk)

    frames = []
    for video_visits in visits:
        groups = []
        walks_list = list(video_visits.values())
        for k in rng.permutation(len(walks_list)):  # people come through in random order
            walks = walks_list[k]
            if len(walks) == 1:
                groups += [[still] for still in walks[0]]
                continue
            for a, b in zip(*walks):
                if rng.random() < PAIR_SHARE and _apart(a, b, people, scale):
                    groups.append([a, b])
                else:
                    groups += [[a], [b]]
        frames.append(groups)
    return frames


def _apart(a: Still, b: Still, people, scale) -> bool:
    """Whether two walkers stand far enough apart for their boxes to barely touch."""
    gap = max(abs(a.centre[0] - b.centre[0]), abs(a.centre[1] - b.centre[1]))
    return gap > 0.6 * scale * (people[a.person].shoulders + people[b.person].shoulders)


def _overlap(a, b) -> float:
    """Shared area of two square boxes as a share of the smaller one."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0) / min(a[2], b[2]) ** 2


def _check_arguments(identities, videos, stills_per_person, frame_size):
    if identities < 2:
        raise ValueError(f"identities={identities}: need at least 2 people to tell apart.")
    if videos < 1:
        raise ValueError(f"videos={videos}: need at least 1 video.")
    if videos > identities:
        raise ValueError(f"videos={videos} > identities={identities}: every video must show someone; "
                         "use fewer videos or more identities.")
    if stills_per_person < 1:
        raise ValueError(f"stills_per_person={stills_per_person}: need at least 1 still per person.")
    if len(frame_size) != 2 or frame_size[0] < MIN_FRAME_SIZE[0] or frame_size[1] < MIN_FRAME_SIZE[1]:
        raise ValueError(f"frame_size={tuple(frame_size)} is too small; give (height, width) of at least "
                         f"{MIN_FRAME_SIZE} (TVPR is {REFERENCE_SIZE}).")


def generate(root, identities: int = 100, videos: int = 23, stills_per_person: int = 6,
             frame_size=REFERENCE_SIZE, seed: int = 0, progress: bool = True) -> Path:
    """Write a TVPR-shaped raw data set under root (never over an existing one); returns annotations.csv."""
    _check_arguments(identities, videos, stills_per_person, frame_size)
    root = Path(root)
    csv_path = root / "annotations.csv"
    names = [f"video_{v + 1:0{max(2, len(str(videos)))}d}" for v in range(videos)]
    if csv_path.exists() or any((root / n).is_dir() and any((root / n).iterdir()) for n in names):
        raise FileExistsError(f"{root} already holds a data set ({csv_path.name} or video folders); "
                              "choose an empty folder, or delete it to generate again.")
    H, W = int(frame_size[0]), int(frame_size[1])
    scale = min(H / REFERENCE_SIZE[0], W / REFERENCE_SIZE[1])
    # separate streams, so that looks do not depend on how many frames or videos are drawn
    people = sample_people(np.random.default_rng([seed, 1]), identities)
    office = office_plan(np.random.default_rng([seed, 2]), (H, W))
    frames = _schedule(np.random.default_rng([seed, 3]), people, videos, stills_per_person, (H, W), scale)

    rows = []
    bar = tqdm(total=sum(map(len, frames)), desc="topview frames", disable=not progress)
    for v, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        albedo, lighting = video_background(np.random.default_rng([seed, 4, v]), office, v, videos)
        order = np.random.default_rng([seed, 5, v])
        index = int(order.integers(0, 30))
        for group in frames[v]:
            rng = np.random.default_rng([seed, 6, v, index])
            placed = [place(people[st.person], st.centre, st.heading, st.phase, (H, W), scale, rng)
                      for st in group]
            shots = [placed]
            if len(placed) == 2 and _overlap(placed[0].box, placed[1].box) > MAX_OVERLAP:
                shots = [placed[:1], placed[1:]]  # too close after all: two frames, one walker each
            for k, shot in enumerate(shots):
                image = render_frame(albedo, lighting, shot, rng, scale)
                Image.fromarray(image).save(folder / f"{index + k:06d}.png", compress_level=1)
                rows += [(name, index + k, pl.person_id, *pl.box) for pl in shot]
            index += int(order.integers(4, 40))  # stills are picked from a longer video
            bar.update()
    bar.close()

    rows.sort()
    tmp = csv_path.with_suffix(".csv.tmp")  # the csv appears only once every frame is written
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    tmp.replace(csv_path)
    return csv_path

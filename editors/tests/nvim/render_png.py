#!/usr/bin/env python3
"""Draws tmux screen captures (`tmux capture-pane -p -e`) into one PNG.

    render_png.py OUT.png CAPTION1 SCREEN1.ansi [CAPTION2 SCREEN2.ansi ...]

Each screen is drawn cell by cell with DejaVu Sans Mono (Debian's
fonts-dejavu-core), interpreting the SGR escapes tmux writes (16 and 256
colours, 24-bit colour, bold, italic, underline, reverse), under its caption.
Needs Pillow. Used by capture.sh.
"""
import re
import sys
import textwrap

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu/"
SIZE = 15
DEFAULT_FG = (0xD0, 0xD0, 0xD0)
DEFAULT_BG = (0x1C, 0x1C, 0x1C)
PAGE_BG = (0xF4, 0xF4, 0xF4)
CAPTION_FG = (0x20, 0x20, 0x20)
BASE16 = [
    (0x00, 0x00, 0x00), (0xCD, 0x31, 0x31), (0x0D, 0xBC, 0x79), (0xE5, 0xE5, 0x10),
    (0x24, 0x72, 0xC8), (0xBC, 0x3F, 0xBC), (0x11, 0xA8, 0xCD), (0xE5, 0xE5, 0xE5),
    (0x66, 0x66, 0x66), (0xF1, 0x4C, 0x4C), (0x23, 0xD1, 0x8B), (0xF5, 0xF5, 0x43),
    (0x3B, 0x8E, 0xEA), (0xD6, 0x70, 0xD6), (0x29, 0xB8, 0xDB), (0xFF, 0xFF, 0xFF),
]


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    g = 8 + 10 * (n - 232)
    return (g, g, g)


class Style:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = self.italic = self.underline = self.reverse = False

    def copy(self):
        s = Style()
        s.__dict__.update(self.__dict__)
        return s

    def apply(self, params):
        ps = [int(p) if p else 0 for p in re.split("[;:]", params)] if params else [0]
        i = 0
        while i < len(ps):
            p = ps[i]
            if p == 0:
                self.reset()
            elif p == 1:
                self.bold = True
            elif p == 3:
                self.italic = True
            elif p == 4:
                self.underline = True
            elif p == 7:
                self.reverse = True
            elif p == 22:
                self.bold = False
            elif p == 23:
                self.italic = False
            elif p == 24:
                self.underline = False
            elif p == 27:
                self.reverse = False
            elif 30 <= p <= 37:
                self.fg = BASE16[p - 30]
            elif 90 <= p <= 97:
                self.fg = BASE16[p - 90 + 8]
            elif 40 <= p <= 47:
                self.bg = BASE16[p - 40]
            elif 100 <= p <= 107:
                self.bg = BASE16[p - 100 + 8]
            elif p == 39:
                self.fg = None
            elif p == 49:
                self.bg = None
            elif p in (38, 48) and i + 1 < len(ps):
                if ps[i + 1] == 5 and i + 2 < len(ps):
                    color = xterm256(ps[i + 2])
                    i += 2
                elif ps[i + 1] == 2 and i + 4 < len(ps):
                    color = tuple(ps[i + 2 : i + 5])
                    i += 4
                else:
                    color = None
                if p == 38:
                    self.fg = color
                else:
                    self.bg = color
            i += 1


def parse(text):
    """Lines of (char, Style) cells."""
    lines = []
    style = Style()
    for raw in text.split("\n"):
        cells = []
        for m in re.finditer(r"\x1b\[([0-9;:]*)m|\x1b[^a-zA-Z]*[a-zA-Z]|(.)", raw):
            if m.group(2) is not None:
                cells.append((m.group(2), style.copy()))
            elif m.group(0).endswith("m") and m.group(0).startswith("\x1b["):
                style.apply(m.group(1))
        lines.append(cells)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def main():
    out, rest = sys.argv[1], sys.argv[2:]
    pairs = list(zip(rest[0::2], rest[1::2]))
    fonts = {
        (False, False): ImageFont.truetype(FONT_DIR + "DejaVuSansMono.ttf", SIZE),
        (True, False): ImageFont.truetype(FONT_DIR + "DejaVuSansMono-Bold.ttf", SIZE),
        (False, True): ImageFont.truetype(FONT_DIR + "DejaVuSansMono-Oblique.ttf", SIZE),
        (True, True): ImageFont.truetype(FONT_DIR + "DejaVuSansMono-BoldOblique.ttf", SIZE),
    }
    caption_font = ImageFont.truetype(FONT_DIR + "DejaVuSans.ttf", SIZE)
    cw = round(fonts[(False, False)].getlength("M"))
    ascent, descent = fonts[(False, False)].getmetrics()
    ch = ascent + descent + 2
    screens = [(caption, parse(open(path, encoding="utf-8").read())) for caption, path in pairs]
    cols = max(len(line) for _, lines in screens for line in lines)
    margin = 16
    width = cols * cw + 2 * margin
    wrap = max(20, int((width - 2 * margin) / (caption_font.getlength("n") or 8)))
    blocks = []
    height = margin
    for caption, lines in screens:
        caption_lines = textwrap.wrap(caption, wrap)
        blocks.append((caption_lines, lines, height))
        height += len(caption_lines) * (SIZE + 6) + 8 + len(lines) * ch + margin
    img = Image.new("RGB", (width, height), PAGE_BG)
    draw = ImageDraw.Draw(img)
    for caption_lines, lines, top in blocks:
        y = top
        for cl in caption_lines:
            draw.text((margin, y), cl, font=caption_font, fill=CAPTION_FG)
            y += SIZE + 6
        y += 8
        draw.rectangle([margin, y, margin + cols * cw - 1, y + len(lines) * ch - 1], fill=DEFAULT_BG)
        for row, cells in enumerate(lines):
            for col, (c, st) in enumerate(cells):
                fg, bg = st.fg or DEFAULT_FG, st.bg or DEFAULT_BG
                if st.reverse:
                    fg, bg = bg, fg
                x0, y0 = margin + col * cw, y + row * ch
                if bg != DEFAULT_BG:
                    draw.rectangle([x0, y0, x0 + cw - 1, y0 + ch - 1], fill=bg)
                if c != " ":
                    draw.text((x0, y0 + 1), c, font=fonts[(st.bold, st.italic)], fill=fg)
                if st.underline:
                    draw.line([x0, y0 + ch - 2, x0 + cw - 1, y0 + ch - 2], fill=fg)
    # A screen has few colours; a palette image is a fraction of the size.
    img.convert("P", palette=Image.ADAPTIVE, colors=64).save(out, optimize=True)


if __name__ == "__main__":
    main()

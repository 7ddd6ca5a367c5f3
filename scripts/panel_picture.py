"""A picture of PoseFit's sidebar panel, drawn from the panel's own ``draw()`` (Blender draws no UI headless).

:class:`SketchLayout` stands in for ``bpy.types.UILayout``: the real ``POSEFIT_PT_main.draw`` runs against it
and records boxes, rows, labels, properties (with their current values) and buttons; :func:`render_panel`
lays that tree out with PIL in Blender's dark theme. Used by ``scripts/render_guide_images.py``.
"""

from __future__ import annotations

import pathlib
from types import SimpleNamespace

ROW_H, PAD, WIDTH = 22, 6, 330
COLOURS = {
    "panel": (48, 48, 48),
    "box": (61, 61, 61),
    "field": (84, 84, 84),
    "button": (89, 89, 89),
    "text": (230, 230, 230),
    "dim": (150, 150, 150),
    "border": (35, 35, 35),
    "check": (71, 114, 179),
}


class SketchLayout:
    """Records what a panel's draw() asks for, as a tree of (kind, text, children, horizontal)."""

    def __init__(self, kind: str = "column", horizontal: bool = False):
        self.kind, self.horizontal, self.items = kind, horizontal, []
        self.enabled, self.scale_y, self.alignment = True, 1.0, "EXPAND"

    def _add(self, child: SketchLayout) -> SketchLayout:
        self.items.append(child)
        return child

    def box(self) -> SketchLayout:
        return self._add(SketchLayout("box"))

    def column(self, **_kwargs) -> SketchLayout:
        return self._add(SketchLayout("column"))

    def row(self, **_kwargs) -> SketchLayout:
        return self._add(SketchLayout("row", horizontal=True))

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.items.append(("label", text))

    def prop(self, data, name: str, text: str | None = None, **_kwargs) -> None:
        rna = data.bl_rna.properties[name]
        value = getattr(data, name)
        title = rna.name if text is None else text
        if rna.type == "BOOLEAN":
            self.items.append(("check", title, bool(value)))
            return
        if rna.type == "ENUM":
            shown = next((item.name for item in rna.enum_items if item.identifier == value), str(value))
        elif rna.type == "FLOAT":
            shown = f"{value:.3f}"
        else:
            shown = str(value) if value != "" else ""
            if rna.subtype in ("FILE_PATH", "DIR_PATH"):
                shown = pathlib.Path(shown).name if shown else ""
        self.items.append(("field", title, shown))

    def prop_search(self, data, name: str, *_args, **kwargs) -> None:
        self.prop(data, name, **kwargs)

    def operator(self, idname: str, text: str | None = None, **_kwargs) -> None:
        import bpy

        category, op = idname.split(".")
        label = text or getattr(getattr(bpy.ops, category), op).get_rna_type().name
        self.items.append(("button", label, self.enabled))


def _height(node) -> int:
    if isinstance(node, tuple):
        return ROW_H
    if node.horizontal:
        return max((_height(c) for c in node.items), default=0)
    inner = sum(_height(c) for c in node.items) + (2 * PAD if node.kind == "box" else 0)
    return inner + (PAD if node.kind == "box" else 0)


def _draw(draw, font, node, x: int, y: int, w: int, enabled: bool = True) -> int:
    """Draw ``node`` at (x, y) with width ``w``; returns the next y."""
    if isinstance(node, tuple):
        kind, text = node[0], node[1]
        colour = COLOURS["text"] if enabled else COLOURS["dim"]
        if kind == "label":
            draw.text((x + 4, y + 5), text, fill=colour, font=font)
        elif kind == "check":
            draw.rectangle((x + 2, y + 4, x + 15, y + 17), fill=COLOURS["check"] if node[2] else COLOURS["field"])
            draw.text((x + 21, y + 5), text, fill=colour, font=font)
        elif kind == "field":
            half = x + w * 2 // 5
            draw.text((x + 4, y + 5), text, fill=colour, font=font)
            draw.rounded_rectangle((half, y + 2, x + w - 2, y + ROW_H - 2), 4, fill=COLOURS["field"])
            draw.text((half + 5, y + 5), node[2][:28], fill=colour, font=font)
        else:  # button
            live = enabled and node[2]
            draw.rounded_rectangle((x + 1, y + 2, x + w - 1, y + ROW_H - 2), 4, fill=COLOURS["button"])
            width = draw.textlength(text, font=font)
            draw.text((x + (w - width) / 2, y + 5), text, fill=COLOURS["text"] if live else COLOURS["dim"], font=font)
        return y + ROW_H
    enabled = enabled and node.enabled
    if node.kind == "box":
        draw.rounded_rectangle(
            (x, y, x + w, y + _height(node) - PAD), 5, fill=COLOURS["box"], outline=COLOURS["border"]
        )
        x, y, w = x + PAD, y + PAD, w - 2 * PAD
    if node.horizontal and node.items:
        share = w // len(node.items)
        bottom = y
        for i, child in enumerate(node.items):
            bottom = max(bottom, _draw(draw, font, child, x + i * share, y, share - 2, enabled))
        return bottom
    for child in node.items:
        y = _draw(draw, font, child, x, y, w, enabled)
    return y + (2 * PAD if node.kind == "box" else 0)


def render_panel(panel_class, context, path: pathlib.Path, title: str = "PoseFit") -> None:
    """Run ``panel_class.draw`` against a :class:`SketchLayout` and save the picture as PNG at ``path``."""
    from PIL import Image, ImageDraw, ImageFont

    layout = SketchLayout()
    panel_class.draw(SimpleNamespace(layout=layout), context)
    height = _height(layout) + ROW_H + 2 * PAD
    image = Image.new("RGB", (WIDTH, height), COLOURS["panel"])
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((PAD + 2, PAD), f"v {title}", fill=COLOURS["text"], font=font)
    _draw(draw, font, layout, PAD, PAD + ROW_H, WIDTH - 2 * PAD)
    image.save(path, optimize=True)

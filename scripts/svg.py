"""A tiny SVG writer: just enough for the pictures trace.sh and compare.sh draw.

    picture = Svg(800, 300)
    picture.rect(10, 10, 100, 20, fill="#4e79a7", tip="epoll_wait 1.2 s")
    picture.text(10, 50, "hello")
    picture.save("out.svg")

On top of the primitives, two charts: timeline() (one lane per process or
thread, spans of time on each, events marked across all lanes) and
grouped_bars() (one row per item, one bar per series). Plain SVG 1.1, no
script, no stylesheet: any browser or image viewer shows it.
"""
import math
from xml.sax.saxutils import escape, quoteattr

FONT = "font-family='DejaVu Sans, Helvetica, Arial, Noto Sans CJK SC, sans-serif'"
CHAR_WIDTH = 6.2  # average width of a character at font-size 11, to fit labels

# Colour-blind friendly series colours (Tableau 10 order).
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]


def _fmt(number):
    """Coordinates with two decimals at most: smaller files, same picture."""
    return ("%.2f" % number).rstrip("0").rstrip(".")


class Svg:
    def __init__(self, width, height):
        self.width = width
        self.height = height
        self.parts = []

    def _element(self, tag, attrs, content=None, tip=None):
        text = "".join(" %s=%s" % (k.replace("_", "-"), quoteattr(_fmt(v) if isinstance(v, float) else str(v)))
                       for k, v in attrs.items() if v is not None)
        inner = ""
        if tip:
            inner += "<title>%s</title>" % escape(tip)  # shown as a tooltip on hover
        if content is not None:
            inner += escape(content)
        self.parts.append("<%s%s>%s</%s>" % (tag, text, inner, tag) if inner else "<%s%s/>" % (tag, text))

    def rect(self, x, y, width, height, fill, tip=None, **attrs):
        self._element("rect", dict(x=float(x), y=float(y), width=float(max(width, 0.5)), height=float(height),
                                   fill=fill, **attrs), tip=tip)

    def line(self, x1, y1, x2, y2, stroke="#333", **attrs):
        self._element("line", dict(x1=float(x1), y1=float(y1), x2=float(x2), y2=float(y2), stroke=stroke, **attrs))

    def polyline(self, points, stroke, tip=None, **attrs):
        self._element("polyline", dict(points=" ".join("%s,%s" % (_fmt(px), _fmt(py)) for px, py in points),
                                       fill="none", stroke=stroke, **attrs), tip=tip)

    def circle(self, cx, cy, r, fill, tip=None, **attrs):
        self._element("circle", dict(cx=float(cx), cy=float(cy), r=float(r), fill=fill, **attrs), tip=tip)

    def text(self, x, y, content, size=11, anchor="start", **attrs):
        self.parts.append("<text x='%s' y='%s' font-size='%s' text-anchor='%s' %s%s>%s</text>" % (
            _fmt(x), _fmt(y), size, anchor, FONT,
            "".join(" %s=%s" % (k.replace("_", "-"), quoteattr(str(v))) for k, v in attrs.items()),
            escape(str(content))))

    def render(self):
        head = ("<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' viewBox='0 0 %d %d'>"
                % (self.width, self.height, self.width, self.height))
        background = "<rect width='100%' height='100%' fill='white'/>"
        return "\n".join([head, background] + self.parts + ["</svg>"]) + "\n"

    def save(self, path):
        with open(path, "w") as f:
            f.write(self.render())


def fits(label, width):
    return _text_width(label) + 6 <= width


def nice_step(span, wanted_ticks=8):
    """A round tick interval (1, 2 or 5 times a power of ten) for an axis."""
    if span <= 0:
        return 1.0
    raw = span / wanted_ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def timeline(title, lanes, events, start, end, legend=(), width=1100, footer=None):
    """Draws lanes of spans against time and returns the Svg.

    lanes:  [(label, spans, ticks)] or [(label, spans, ticks, extras)];
            spans are (t0, t1, label, colour, tip), drawn as bars;
            ticks are instants of short calls, drawn as a density strip;
            extras (optional) is {"copies": [(t, colour, tip)] drawn as full
            height marks, one per call, "signals": [(t, name)] drawn as
            triangles on the lane's top edge, "busy": [(t0, t1, tip)] drawn
            as a band under everything else};
            a label may have a second line after a newline (a call count).
    events: [(t, label)] marked by a vertical line across every lane.
    legend: [(colour, meaning)].
    Times are seconds on one clock; start and end bound the axis."""
    right, top = 20, 60
    # Wide enough for every lane's label and its second line (size 9).
    left = max([170] + [_text_width(lane[0].partition("\n")[2]) * 9 / 11 + 16 for lane in lanes]
               + [_text_width(lane[0].partition("\n")[0]) + 16 for lane in lanes])
    lane_height, gap = 36, 8
    plot = width - left - right
    span = max(end - start, 1e-6)

    def x_of(t):
        return left + (min(max(t, start), end) - start) / span * plot

    placed = place_labels([(x_of(t), label) for t, label in sorted(events)], width - right)
    event_rows = max([row for _, _, row, _ in placed] + [0]) + 1
    legend_rows = _legend_rows(legend, width)
    top += 18 * (len(legend_rows) - 1)
    axis_y = top + event_rows * 14
    height = axis_y + 24 + len(lanes) * (lane_height + gap) + 30
    picture = Svg(width, height)
    picture.text(10, 20, title, size=14, font_weight="bold")
    for row, entries in enumerate(legend_rows):
        for x, colour, meaning in entries:
            picture.rect(x, 30 + 18 * row, 12, 12, colour)
            picture.text(x + 16, 40 + 18 * row, meaning)

    step = nice_step(span)
    tick = 0.0
    lanes_top = axis_y + 20
    lanes_bottom = lanes_top + len(lanes) * (lane_height + gap)
    while tick <= span + 1e-9:
        tx = x_of(start + tick)
        picture.line(tx, lanes_top - 4, tx, lanes_bottom, stroke="#ddd")
        picture.text(tx, lanes_top - 6, "%gs" % round(tick, 6), size=10, anchor="middle", fill="#555")
        tick += step

    for row, lane in enumerate(lanes):
        label, spans, ticks = lane[:3]
        extras = lane[3] if len(lane) > 3 else {}
        y = lanes_top + row * (lane_height + gap)
        picture.rect(left, y, plot, lane_height, "#f4f4f4")
        name, _, second = label.partition("\n")
        picture.text(left - 8, y + lane_height / 2 + (0 if second else 4), name, anchor="end")
        if second:
            picture.text(left - 8, y + lane_height / 2 + 12, second, size=9, anchor="end", fill="#555")
        for t0, t1, tip in extras.get("busy", []):
            # A lane that never sleeps is not idle: a band the height of the lane.
            picture.rect(x_of(t0), y, max(x_of(t1) - x_of(t0), 2), lane_height, "#f4a6a6", tip=tip)
        _density_strip(picture, ticks, x_of, y + lane_height - 9, left, plot)
        for t0, t1, span_label, colour, tip in spans:
            x0, x1 = x_of(t0), x_of(t1)
            picture.rect(x0, y + 2, x1 - x0, lane_height - 13, colour, tip=tip, stroke="white", stroke_width=0.5)
            if fits(span_label, x1 - x0):
                picture.text(x0 + 3, y + lane_height / 2 + 1, span_label, size=10, fill=text_colour_on(colour))
        for t, colour, tip in extras.get("copies", []):
            # Each call that copied data, drawn on its own over the spans: who copies, and when.
            picture.rect(x_of(t) - 2, y - 3, 4, lane_height + 6, colour, tip=tip, stroke="#222", stroke_width=0.4)
        for t, signal in extras.get("signals", []):
            sx = x_of(t)
            picture.parts.append("<polygon points='%s,%s %s,%s %s,%s' fill='#8c1d40'><title>%s</title></polygon>" % (
                _fmt(sx - 4), _fmt(y - 3), _fmt(sx + 4), _fmt(y - 3), _fmt(sx), _fmt(y + 5), escape(signal)))

    for ex, label, row, anchor in placed:
        ly = top + row * 14
        picture.line(ex, ly + 3, ex, lanes_bottom, stroke="#c0392b", stroke_dasharray="3,3", stroke_width=0.7)
        picture.text(ex + (3 if anchor == "start" else -3), ly, label, size=10, anchor=anchor, fill="#c0392b")
    picture.text(left, lanes_bottom + 18, footer or "time since the trace started; hover a span for the call",
                 size=10, fill="#555")
    return picture


def _legend_rows(legend, width):
    """The legend's entries placed left to right, wrapping to a new row at the edge:
    [[(x, colour, meaning)]]."""
    rows, x = [[]], 10
    for colour, meaning in legend:
        entry_width = 16 + _text_width(meaning) + 16
        if rows[-1] and x + entry_width > width - 10:
            rows.append([])
            x = 10
        rows[-1].append((x, colour, meaning))
        x += entry_width
    return rows


def _text_width(text):
    """Wide (CJK) characters take about twice the width of a Latin one."""
    return sum(CHAR_WIDTH * (1.8 if ord(ch) > 0x2e80 else 1) for ch in text)


def place_labels(marks, right_edge):
    """Puts each label (x, text) on the first row where it does not overlap
    the one before it; a label that would cross the right edge ends at its mark.
    Returns (x, text, row, anchor)."""
    row_ends = []  # per row, where the last label placed there ends
    placed = []
    for x, label in marks:
        width = _text_width(label) * 10 / 11 + 6
        anchor = "end" if x + width > right_edge else "start"
        x0 = x - width if anchor == "end" else x
        row = next((r for r, row_end in enumerate(row_ends) if row_end < x0), len(row_ends))
        if row == len(row_ends):
            row_ends.append(0)
        row_ends[row] = x0 + width
        placed.append((x, label, row, anchor))
    return placed


def text_colour_on(fill):
    """Dark text on a light fill, white on a dark one."""
    red, green, blue = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#222" if 0.299 * red + 0.587 * green + 0.114 * blue > 160 else "white"


def _density_strip(picture, instants, x_of, y, left, plot, bins=400):
    """Short calls are too many to draw one by one: a strip whose darkness
    grows with how many fell in each slice of time."""
    if not instants:
        return
    counts = [0] * bins
    for t in instants:
        counts[min(bins - 1, max(0, int((x_of(t) - left) / plot * bins)))] += 1
    peak = max(counts)
    for i, count in enumerate(counts):
        if count:
            opacity = 0.25 + 0.75 * math.log1p(count) / math.log1p(peak)
            picture.rect(left + i * plot / bins, y, plot / bins, 8, "#333", fill_opacity="%.2f" % opacity)


def grouped_bars(picture, x, y, width, title, rows, series, values, unit, log_scale=False, notes=None, spreads=None):
    """Draws a horizontal grouped bar chart into picture at (x, y); returns its height.

    rows:   item names, one group of bars each (top to bottom)
    series: series names, one bar per row each (colour from PALETTE)
    values: {(row, series): number or None}; None draws no bar
    notes:  {(row, series): short text} written after the bar (e.g. "99 stalled")
    spreads: {(row, series): (low, high)} drawn as an error bar across the bar's end"""
    label_width, bar_height, group_gap = 160, 9, 8
    notes, spreads = notes or {}, spreads or {}
    numbers = [v for v in values.values() if v is not None and v > 0]
    numbers += [hi for lo, hi in spreads.values() if hi is not None and hi > 0]
    top = max(numbers) if numbers else 1.0
    bottom = min(numbers) if numbers else 1.0
    plot = width - label_width - 70
    low = math.floor(math.log10(bottom))
    high = max(math.ceil(math.log10(top)), low + 1)
    step = nice_step(top, 4)
    axis_end = 10 ** high if log_scale else math.ceil(top / step - 1e-9) * step
    ticks = [10 ** p for p in range(low, high + 1)] if log_scale else [
        i * step for i in range(int(round(axis_end / step)) + 1)]

    def length(v):
        if v is None or v <= 0:
            return 0.0
        if log_scale:
            return (math.log10(v) - low) / (high - low) * plot
        return v / axis_end * plot

    picture.text(x, y + 14, title + (" (log scale)" if log_scale else ""), size=12, font_weight="bold")
    legend_x = x
    for i, name in enumerate(series):
        picture.rect(legend_x, y + 22, 10, 10, PALETTE[i % len(PALETTE)])
        picture.text(legend_x + 14, y + 31, name, size=10)
        legend_x += 14 + len(name) * CHAR_WIDTH + 12
    cy = y + 44
    chart_bottom = cy + len(rows) * (len(series) * bar_height + group_gap)
    for tick in ticks:  # gridlines first, so the bars are drawn over them
        tx = x + label_width + (length(tick) if tick > 0 else 0.0)
        picture.line(tx, y + 40, tx, chart_bottom, stroke="#e4e4e4")
        picture.text(tx, chart_bottom + 12, _human(tick), size=9, anchor="middle", fill="#555")
    picture.text(x + label_width + plot, chart_bottom + 24, unit, size=9, anchor="end", fill="#555")
    for row in rows:
        group_height = len(series) * bar_height
        picture.text(x + label_width - 6, cy + group_height / 2 + 4, row, size=10, anchor="end")
        for i, name in enumerate(series):
            v = values.get((row, name))
            bar = length(v)
            by = cy + i * bar_height
            if bar > 0:
                picture.rect(x + label_width, by, bar, bar_height - 1, PALETTE[i % len(PALETTE)],
                             tip="%s, %s: %s %s" % (row, name, _human(v), unit))
            spread = spreads.get((row, name))
            end = bar
            if bar > 0 and spread and spread[0] is not None and spread[1] is not None:
                lo, hi = x + label_width + length(spread[0]), x + label_width + length(spread[1])
                mid = by + (bar_height - 1) / 2
                picture.line(lo, mid, hi, mid, stroke="#222", stroke_width=1)
                picture.line(lo, by + 1, lo, by + bar_height - 2, stroke="#222", stroke_width=1)
                picture.line(hi, by + 1, hi, by + bar_height - 2, stroke="#222", stroke_width=1)
                end = max(bar, hi - x - label_width)
            note = notes.get((row, name))
            words = ", ".join(w for w in (_human(v) if v is not None else "", note) if w)
            if words:  # the value itself, so a projected chart needs no hovering; a note in red
                picture.text(x + label_width + end + 3, by + bar_height - 1, words, size=8,
                             fill="#c0392b" if note else "#333")
        cy += group_height + group_gap
    picture.line(x + label_width, y + 40, x + label_width, cy, stroke="#999")
    return cy + 30 - y


def _human(v):
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e4:
        return "%.0fk" % (v / 1e3)
    if v >= 100:
        return "%.0f" % v
    return "%.3g" % v

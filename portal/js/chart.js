// A bar chart as inline SVG (no library, no network): one bar per item, its exact figure in
// the bar's <title> and in the table the view puts beside it.

import { svg } from "./dom.js";
import { approx } from "./format.js";

export function barChart(items, { label = (i) => i.label, value = (i) => i.value, tick = label, caption = "" } = {}) {
  const width = 720;
  const height = 220;
  const left = 56;
  const bottom = 28;
  const top = 12;
  const plotWidth = width - left - 8;
  const plotHeight = height - top - bottom;
  const values = items.map((i) => Math.max(0, approx(value(i))));
  const max = Math.max(...values, 0) || 1;
  const step = items.length ? plotWidth / items.length : plotWidth;
  const barWidth = Math.max(2, Math.min(step * 0.7, 48));
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": caption,
  });
  chart.append(
    svg("line", { class: "axis", x1: left, y1: top + plotHeight, x2: width - 8, y2: top + plotHeight }),
    svg("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, formatMax(max)),
    svg("text", { x: left - 6, y: top + plotHeight, "text-anchor": "end" }, "0"),
  );
  items.forEach((item, n) => {
    const barHeight = (values[n] / max) * plotHeight;
    const x = left + n * step + (step - barWidth) / 2;
    const bar = svg(
      "rect",
      { class: "bar", x: x.toFixed(1), y: (top + plotHeight - barHeight).toFixed(1), width: barWidth.toFixed(1), height: barHeight.toFixed(1) },
      svg("title", {}, `${label(item)}: ${value(item)}`),
    );
    chart.append(bar);
    const every = Math.ceil(items.length / 10);
    if (n % every === 0) {
      chart.append(svg("text", { x: (x + barWidth / 2).toFixed(1), y: height - 8, "text-anchor": "middle" }, String(tick(item))));
    }
  });
  return chart;
}

function formatMax(max) {
  return max >= 1000 ? max.toFixed(0) : max.toPrecision(3);
}

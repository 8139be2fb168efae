// A live line chart of values in [0, 1) over a sliding time window, drawn on a <canvas>.
//
// Sharp on every screen: the backing store is sized in device pixels (CSS size * devicePixelRatio)
// and redrawn when the element resizes or the ratio changes (zoom, moving to another monitor).
// Colours come from CSS custom properties on the canvas, so light and dark mode are the stylesheet's
// business; they are re-read when the colour scheme changes.
//
// For tests and tools the canvas carries `data-points` (points inside the window), `data-drawn`
// (points drawn in the latest frame: a frame that plots nothing says 0) and `data-message` (the text
// an empty chart shows, "" under a line).

const FRAME_MS = 50; // the line scrolls about 1 px per 70 ms on a wide screen; 20 fps looks smooth
const PAD = { top: 12, right: 14, bottom: 24, left: 34 }; // CSS px, room for the axis labels

/** @typedef {{ line: string, grid: string, text: string, surface: string, font: string }} Colors */

export class LiveChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{ windowMs?: number }} options
   */
  constructor(canvas, { windowMs = 60_000 } = {}) {
    this.canvas = canvas;
    const ctx = canvas.getContext("2d");
    // Every browser the page targets has a 2D canvas; without one there is no chart to degrade to.
    if (ctx === null) throw new Error("no 2D canvas context");
    this.ctx = ctx;
    this.windowMs = windowMs;
    /** @type {{ t: number, v: number }[]} t is performance.now() */
    this.points = [];
    this.dirty = true;
    this.lastDraw = -Infinity;
    this.dpr = 0;
    this.cssWidth = 0;
    this.cssHeight = 0;
    /** @type {Colors | null} re-read from the stylesheet when the colour scheme changes */
    this.colors = null;
    /** What an empty chart says: that pushes are on their way, or why none will come. */
    this.emptyText = "Waiting for pushes…";
    this.frame = this.frame.bind(this);

    new ResizeObserver(() => this.#resize()).observe(canvas);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      this.colors = null;
      this.dirty = true;
    });
    this.#resize();
    requestAnimationFrame(this.frame);
  }

  /**
   * @param {number} value in [0, 1] (clamped)
   * @param {number} t performance.now() of its arrival
   */
  add(value, t = performance.now()) {
    this.points.push({ t, v: Math.min(1, Math.max(0, value)) });
    // Drawing prunes too, but a hidden tab gets no animation frames: keep memory bounded anyway.
    if (this.points.length > 64 && this.points[0].t < t - 2 * this.windowMs) {
      this.points = this.points.filter((p) => p.t >= t - this.windowMs - 1000);
    }
    this.dirty = true;
  }

  clear() {
    this.points.length = 0;
    this.dirty = true;
  }

  /** @param {string} text what the chart says while it has no points */
  setEmptyText(text) {
    if (text === this.emptyText) return;
    this.emptyText = text;
    this.dirty = true;
  }

  #resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.cssWidth = rect.width;
    this.cssHeight = rect.height;
    this.dpr = dpr;
    const w = Math.max(1, Math.round(rect.width * dpr));
    const h = Math.max(1, Math.round(rect.height * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.dirty = true;
  }

  /** @returns {Colors} */
  #readColors() {
    const style = getComputedStyle(this.canvas);
    /** @type {(name: string, fallback: string) => string} */
    const get = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    this.colors = {
      line: get("--chart-line", "#0d9488"),
      grid: get("--chart-grid", "#e5e7eb"),
      text: get("--chart-text", "#6b7280"),
      surface: get("--chart-surface", "#ffffff"),
      font: `11px ${style.fontFamily}`,
    };
    return this.colors;
  }

  /** @param {DOMHighResTimeStamp} now */
  frame(now) {
    requestAnimationFrame(this.frame);
    if (window.devicePixelRatio !== this.dpr) this.#resize();
    // Nothing moves on an empty chart: redraw it only when something changed.
    if (!this.dirty && (this.points.length === 0 || now - this.lastDraw < FRAME_MS)) return;
    this.lastDraw = now;
    this.dirty = false;
    this.#draw(performance.now());
  }

  /** @param {number} now */
  #draw(now) {
    const c = this.colors ?? this.#readColors();
    const { ctx, dpr, cssWidth: W, cssHeight: H } = this;
    const start = now - this.windowMs;

    // Keep one point left of the window so the line enters from the edge instead of popping in.
    let firstInside = this.points.findIndex((p) => p.t >= start);
    if (firstInside === -1) firstInside = this.points.length;
    if (firstInside > 1) this.points.splice(0, firstInside - 1);
    const inside = this.points.filter((p) => p.t >= start).length;

    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const left = PAD.left;
    const top = PAD.top;
    const plotW = Math.max(1, W - PAD.left - PAD.right);
    const plotH = Math.max(1, H - PAD.top - PAD.bottom);
    /** @type {(t: number) => number} */
    const x = (t) => left + ((t - start) / this.windowMs) * plotW;
    /** @type {(v: number) => number} */
    const y = (v) => top + (1 - v) * plotH;

    // Grid and axes. Half-pixel offsets keep 1 px lines crisp at a ratio of 1.
    ctx.font = c.font;
    ctx.lineWidth = 1;
    ctx.strokeStyle = c.grid;
    ctx.fillStyle = c.text;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(left + plotW, yy);
      ctx.stroke();
      if (v === 0 || v === 0.5 || v === 1) ctx.fillText(String(v), left - 8, yy);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let s = 0; s <= 60; s += 15) {
      const xx = Math.round(left + plotW - (s / 60) * plotW) + 0.5;
      ctx.beginPath();
      ctx.moveTo(xx, top + plotH);
      ctx.lineTo(xx, top + plotH + 4);
      ctx.stroke();
      const label = s === 0 ? "now" : `−${s} s`;
      ctx.textAlign = s === 60 ? "left" : s === 0 ? "right" : "center";
      ctx.fillText(label, s === 60 ? xx - 4 : s === 0 ? xx + 4 : xx, top + plotH + 7);
    }

    if (inside === 0) {
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillStyle = c.text;
      ctx.font = `13px ${getComputedStyle(this.canvas).fontFamily}`;
      const lines = wrap(ctx, this.emptyText, plotW - 24);
      const lineHeight = 19;
      const cx = left + plotW / 2;
      const cy = top + plotH / 2;
      // On the surface colour, so the middle grid line does not run through the words.
      const textW = Math.max(...lines.map((line) => ctx.measureText(line).width));
      ctx.fillStyle = c.surface;
      ctx.fillRect(cx - textW / 2 - 10, cy - (lines.length * lineHeight) / 2 - 4, textW + 20, lines.length * lineHeight + 8);
      ctx.fillStyle = c.text;
      lines.forEach((line, i) => {
        ctx.fillText(line, cx, cy + (i - (lines.length - 1) / 2) * lineHeight);
      });
      this.#report(0, 0, this.emptyText);
      return;
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 4, plotW + 4, plotH + 8);
    ctx.clip();

    // Area under the line, fading towards the axis.
    const pts = this.points;
    const gradient = ctx.createLinearGradient(0, top, 0, top + plotH);
    gradient.addColorStop(0, c.line);
    gradient.addColorStop(1, c.surface);
    ctx.beginPath();
    ctx.moveTo(x(pts[0].t), y(0));
    for (const p of pts) ctx.lineTo(x(p.t), y(p.v));
    ctx.lineTo(x(pts[pts.length - 1].t), y(0));
    ctx.closePath();
    ctx.globalAlpha = 0.18;
    ctx.fillStyle = gradient;
    ctx.fill();
    ctx.globalAlpha = 1;

    ctx.beginPath();
    pts.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.t), y(p.v)) : ctx.lineTo(x(p.t), y(p.v))));
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.lineCap = "round";
    ctx.strokeStyle = c.line;
    ctx.stroke();

    // The newest value gets a marker, ringed in the surface colour so it reads on the line.
    const last = pts[pts.length - 1];
    ctx.beginPath();
    ctx.arc(x(last.t), y(last.v), 4.5, 0, Math.PI * 2);
    ctx.fillStyle = c.line;
    ctx.fill();
    ctx.lineWidth = 2;
    ctx.strokeStyle = c.surface;
    ctx.stroke();
    ctx.restore();

    this.#report(inside, pts.length, "");
  }

  /**
   * @param {number} inside points inside the window
   * @param {number} drawn points drawn in this frame
   * @param {string} message the text drawn instead of a line
   */
  #report(inside, drawn, message) {
    const d = this.canvas.dataset;
    if (d.points !== String(inside)) d.points = String(inside);
    if (d.drawn !== String(drawn)) d.drawn = String(drawn);
    if (d.message !== message) d.message = message;
  }
}

/**
 * Breaks `text` into lines no wider than `width` at spaces (a single word wider than that keeps its
 * own line): a phone's plot is narrower than a sentence.
 * @param {CanvasRenderingContext2D} ctx with the font set
 * @param {string} text
 * @param {number} width CSS px
 */
function wrap(ctx, text, width) {
  /** @type {string[]} */
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    const candidate = line === "" ? word : `${line} ${word}`;
    if (line !== "" && ctx.measureText(candidate).width > width) {
      lines.push(line);
      line = word;
    } else {
      line = candidate;
    }
  }
  lines.push(line);
  return lines;
}

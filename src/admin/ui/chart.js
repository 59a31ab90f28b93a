// A line chart on a canvas for the last few minutes of a few series.
// Drawn in one pass per sample, at the screen's pixel ratio, so it
// updates without flicker; no library.

import { h } from './view.js';

export class LineChart {
  /**
   * series: [{ label, color: '--c1' (a CSS variable) }]; format(v) labels
   * the axis; points: how many samples are kept.
   */
  constructor(id, series, { format = String, points = 60 } = {}) {
    this.series = series;
    this.format = format;
    this.points = points;
    this.data = series.map(() => []);
    this.canvas = h('canvas', { id, class: 'chart' });
    this.values = series.map(() => h('b', {}, '–'));
    this.legend = h('div', { class: 'legend' }, series.map((s, i) =>
      h('span', {}, h('i', { style: `background: var(${s.color})` }), `${s.label} `, this.values[i])));
    this.el = h('div', {}, this.canvas, this.legend);
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.canvas);
  }

  push(values) {
    values.forEach((v, i) => {
      const d = this.data[i];
      d.push(Number.isFinite(v) ? v : 0);
      if (d.length > this.points) d.shift();
      this.values[i].textContent = this.format(d[d.length - 1]);
    });
    this.draw();
  }

  destroy() { this.resize.disconnect(); }

  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const w = c.clientWidth, hgt = c.clientHeight;
    if (!w || !hgt) return;
    if (c.width !== Math.round(w * ratio) || c.height !== Math.round(hgt * ratio)) {
      c.width = Math.round(w * ratio);
      c.height = Math.round(hgt * ratio);
    }
    const g = c.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue('--muted').trim();
    const line = css.getPropertyValue('--line').trim();
    const max = niceMax(Math.max(1, ...this.data.flat()));
    const left = 52, top = 8, right = 8, bottom = 18;
    const pw = w - left - right, ph = hgt - top - bottom;
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = muted;
    g.strokeStyle = line;
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + ph - (ph * i) / 4 + 0.5;
      g.beginPath(); g.moveTo(left, y); g.lineTo(left + pw, y); g.stroke();
      g.textAlign = 'right';
      g.fillText(this.format((max * i) / 4), left - 6, y + 4);
    }
    g.textAlign = 'left';
    g.fillText(`last ${Math.round((this.points * 5) / 60)} min`, left, hgt - 4);
    this.data.forEach((d, si) => {
      if (d.length < 2) return;
      g.strokeStyle = css.getPropertyValue(this.series[si].color).trim();
      g.lineWidth = 2;
      g.beginPath();
      d.forEach((v, i) => {
        const x = left + pw - ((d.length - 1 - i) * pw) / (this.points - 1);
        const y = top + ph - (v / max) * ph;
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
    });
  }
}

/** The smallest of 1, 2, 5 × 10ⁿ at or above v. */
function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}


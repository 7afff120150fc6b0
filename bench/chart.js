'use strict'
// Hand-written SVG of the ratios vs async-lock (log scale, >1 = faster or,
// for W7, fewer bytes per waiter), one group of bars per workload. No
// dependencies, so the README can embed the committed file.

const COLORS = { 'keyed-lock': '#d9480f', 'async-mutex': '#868e96', floor: '#1c7ed6', 'async-lock': '#2b8a3e' }
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function renderChart(meta, cells, impls) {
  const shown = impls.filter((i) => i !== 'async-lock')
  const barH = 11
  const groupH = shown.length * barH + 12
  const left = 90
  const width = 720
  const plotW = width - left - 120
  const top = 48
  const height = top + meta.workloads.length * groupH + 40
  // Log axis from 0.1× to 100×.
  const lo = Math.log10(0.1)
  const hi = Math.log10(100)
  const x = (r) => left + ((Math.log10(Math.min(100, Math.max(0.1, r))) - lo) / (hi - lo)) * plotW
  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`)
  out.push(`<rect width="100%" height="100%" fill="#fff"/>`)
  out.push(`<text x="${left}" y="16" font-size="13" font-weight="bold">Speed vs async-lock@1.5.0 (×, log scale; W7: bytes per waiter; S rows: vs async-mutex's Semaphore)</text>`)
  out.push(`<text x="${left}" y="32" fill="#555">${esc(`${meta.date} · ${meta.cpu} × ${meta.cores} · Node ${meta.node} · ${meta.rounds} round(s), medians`)}</text>`)
  for (const tick of [0.1, 0.3, 1, 3, 10, 30, 100]) {
    const tx = x(tick)
    out.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${height - 36}" stroke="${tick === 1 ? '#000' : '#ddd'}"/>`)
    out.push(`<text x="${tx}" y="${height - 24}" text-anchor="middle" fill="#555">${tick}×</text>`)
  }
  meta.workloads.forEach((w, gi) => {
    const gy = top + gi * groupH
    const row = cells[w.name]
    // The S rows (semaphores) are against async-mutex's Semaphore: async-lock has none.
    const baseline = w.baseline || 'async-lock'
    const base = row[baseline]
    out.push(`<text x="${left - 8}" y="${gy + groupH / 2}" text-anchor="end" font-weight="bold">${esc(w.name)}</text>`)
    shown.forEach((impl, bi) => {
      const y = gy + bi * barH
      const s = row[impl]
      if (!s || impl === baseline) return
      if (s.failed) {
        out.push(`<text x="${x(1) + 4}" y="${y + barH - 2}" fill="#c92a2a">${esc(impl)}: ${esc(s.label)}</text>`)
        return
      }
      if (!base || base.failed) {
        out.push(`<text x="${x(1) + 4}" y="${y + barH - 2}" fill="#555">${esc(impl)}: ok, ${esc(baseline)} ${base ? esc(base.label) : 'not run'}</text>`)
        return
      }
      const r = base.value / s.value
      const x1 = Math.min(x(1), x(r))
      const x2 = Math.max(x(1), x(r))
      out.push(`<rect x="${x1}" y="${y + 1}" width="${Math.max(1, x2 - x1)}" height="${barH - 2}" fill="${COLORS[impl] || '#999'}"/>`)
      out.push(`<text x="${x2 + 3}" y="${y + barH - 2}" fill="#333">${r >= 10 ? r.toFixed(0) : r.toFixed(2)}×</text>`)
    })
  })
  shown.forEach((impl, i) => {
    const lx = left + i * 120
    out.push(`<rect x="${lx}" y="${height - 14}" width="10" height="10" fill="${COLORS[impl] || '#999'}"/>`)
    out.push(`<text x="${lx + 14}" y="${height - 5}">${esc(impl)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

module.exports = { renderChart }

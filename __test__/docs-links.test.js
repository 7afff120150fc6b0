'use strict'
// Every relative link in the Markdown a user reads (README, CHANGELOG,
// docs/, bench/README) points at a file that exists and, with a #fragment,
// at a heading of that file, as GitHub renders its anchors. The CHANGELOG
// links each behaviour change to its row in docs/compat.md this way, and a
// renamed heading must not leave those links dangling.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const pages = ['README.md', 'CHANGELOG.md', 'bench/README.md', ...fs.readdirSync(path.join(root, 'docs')).map((f) => `docs/${f}`)]
  .filter((file) => file.endsWith('.md') && fs.existsSync(path.join(root, file)))

/** GitHub's anchor for a heading (github-slugger): lowercased, punctuation dropped, spaces to hyphens. */
function slug(heading) {
  const text = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
  return text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-')
}

function anchors(file) {
  const seen = new Map()
  const found = new Set()
  let fenced = false
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced
    if (fenced) continue
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (heading) {
      const base = slug(heading[1])
      const n = seen.get(base) || 0
      seen.set(base, n + 1)
      found.add(n === 0 ? base : `${base}-${n}`)
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) found.add(m[1])
  }
  return found
}

function links(file) {
  const text = fs.readFileSync(file, 'utf8').replace(/^(```|~~~)[\s\S]*?^\1/gm, '')
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((target) => !/^[a-z][a-z+.-]*:/i.test(target))
}

test('relative links in the Markdown docs resolve to files and headings', () => {
  const broken = []
  let checked = 0
  for (const page of pages) {
    const from = path.join(root, page)
    for (const target of links(from)) {
      checked++
      const [file, fragment] = target.split('#')
      const resolved = file === '' ? from : path.resolve(path.dirname(from), decodeURIComponent(file))
      if (!fs.existsSync(resolved)) {
        broken.push(`${page}: ${target} (no such file)`)
      } else if (fragment !== undefined && resolved.endsWith('.md') && !anchors(resolved).has(fragment)) {
        broken.push(`${page}: ${target} (no such heading in ${path.relative(root, resolved)})`)
      }
    }
  }
  assert.ok(checked > 20, `only ${checked} links found`)
  assert.deepEqual(broken, [])
})

test('the 1.0.0 CHANGELOG entry links its behaviour changes to docs/compat.md', () => {
  const changelog = fs.readFileSync(path.join(root, 'CHANGELOG.md'), 'utf8')
  const entry = /^## 1\.0\.0[^\n]*\n([\s\S]*?)^## /m.exec(changelog)
  assert.ok(entry, 'no "## 1.0.0" entry')
  const compat = links(path.join(root, 'CHANGELOG.md')).filter((target) => target.startsWith('docs/compat.md#'))
  const sections = new Set(compat.map((target) => target.split('#')[1]))
  // Every section of compat.md that lists differences is linked from the entry.
  const [, ...headings] = anchors(path.join(root, 'docs', 'compat.md')) // less the page title
  for (const heading of headings) {
    assert.ok(sections.has(heading), `docs/compat.md#${heading} is not linked from the 1.0.0 entry`)
  }
})

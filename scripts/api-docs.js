'use strict'
// Writes docs/api.md, the API reference, from the declaration files that the
// package's "exports" map names (index.d.ts, alock.d.ts, locky.d.ts,
// exclusive-lock.d.ts): their TSDoc comments are the only copy of the text.
//
//   node scripts/api-docs.js           (npm run docs:api) writes docs/api.md
//   node scripts/api-docs.js --check   exits 1 if docs/api.md is stale or a
//                                      public declaration has no TSDoc
//
// __test__/api-docs.test.js runs the check. Uses the TypeScript compiler
// API from the `typescript` devDependency; nothing else.
const fs = require('node:fs')
const path = require('node:path')
const ts = require('typescript')

const root = path.join(__dirname, '..')
const OUTPUT = path.join(root, 'docs', 'api.md')

/** The entry points and their declaration files, in the exports map's order. */
function entryPoints() {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  const entries = []
  for (const [subpath, target] of Object.entries(manifest.exports || {})) {
    if (!target || typeof target !== 'object' || !target.types) continue
    const specifier = subpath === '.' ? manifest.name : `${manifest.name}/${subpath.replace(/^\.\//, '')}`
    entries.push({ specifier, file: path.normalize(target.types) })
  }
  return { name: manifest.name, entries }
}

/** The text of a JSDoc comment without its `/**`, `*\/` and leading ` * `. */
function commentText(source, jsDoc) {
  const raw = source.text.slice(jsDoc.pos, jsDoc.end)
  const lines = raw
    .replace(/^\/\*\*/, '')
    .replace(/\*\/$/, '')
    .split('\n')
    .map((line) => line.replace(/^\s*\* ?/, '').replace(/\s+$/, ''))
  while (lines.length && lines[0] === '') lines.shift()
  while (lines.length && lines[lines.length - 1] === '') lines.pop()
  return lines.join('\n')
}

/** The node's own JSDoc text (the last comment block before it), or null. */
function docOf(source, node) {
  const docs = node.jsDoc
  if (!docs || docs.length === 0) return null
  const text = commentText(source, docs[docs.length - 1])
  return text === '' ? null : text
}

/** Markdown for a TSDoc comment: the description, then its tags. */
function renderDoc(text) {
  const [description, ...tagBlocks] = text.split(/\n(?=@\w)/)
  const out = []
  let body = description
  if (/^@\w/.test(description)) {
    body = ''
    tagBlocks.unshift(description)
  }
  if (body.trim()) out.push(body.trim())
  const params = []
  const throws = []
  const rest = []
  for (const block of tagBlocks) {
    const m = /^@(\w+)\s*([\s\S]*)$/.exec(block)
    const [tag, content] = [m[1], m[2].replace(/\n\s+/g, (s) => (m[1] === 'example' ? s : ' ')).trim()]
    if (tag === 'param') {
      const p = /^(\S+)\s*(?:-\s*)?([\s\S]*)$/.exec(content)
      params.push(`- \`${p[1]}\`: ${p[2]}`)
    } else if (tag === 'throws') {
      throws.push(`- ${content.replace(/^(\w+)/, '`$1`')}`)
    } else if (tag === 'example') {
      const code = m[2].replace(/^\n/, '').replace(/\s+$/, '')
      rest.push('Example:\n\n```ts\n' + code + '\n```')
    } else if (tag === 'returns' || tag === 'return') {
      rest.push(`Returns: ${content}`)
    } else {
      rest.push(`\`@${tag}\` ${content}`)
    }
  }
  if (params.length) out.push('Parameters:\n\n' + params.join('\n'))
  if (throws.length) out.push('Throws:\n\n' + throws.join('\n'))
  out.push(...rest)
  return out.join('\n\n')
}

/** A declaration's own text, without its JSDoc or its body. */
function signature(source, node) {
  // Continuation lines lose the declaration's own indentation.
  const column = source.getLineAndCharacterOfPosition(node.getStart(source)).character
  const text = node.getText(source).replace(new RegExp(`\n {0,${column}}`, 'g'), '\n')
  if (ts.isClassDeclaration(node) || ts.isInterfaceDeclaration(node)) {
    const open = node.members.pos - node.getStart(source)
    return text.slice(0, open).replace(/\s*\{\s*$/, '').trim()
  }
  if (ts.isModuleDeclaration(node)) return `namespace ${node.name.getText(source)}`
  // Strip JSDoc blocks that sit inside (overload parameters, nested members).
  return text.replace(/\/\*\*[\s*][\s\S]*?\*\//g, '').replace(/\n\s*\n/g, '\n')
}

const memberName = (source, node) => {
  if (ts.isConstructorDeclaration(node) || ts.isConstructSignatureDeclaration(node)) return 'constructor'
  if (ts.isCallSignatureDeclaration(node)) return '(call)'
  if (ts.isIndexSignatureDeclaration(node)) return '[index]'
  return node.name ? node.name.getText(source) : '(anonymous)'
}

const kindOf = (node) =>
  ts.isClassDeclaration(node)
    ? 'class'
    : ts.isInterfaceDeclaration(node)
      ? 'interface'
      : ts.isTypeAliasDeclaration(node)
        ? 'type'
        : ts.isFunctionDeclaration(node)
          ? 'function'
          : ts.isModuleDeclaration(node)
            ? 'namespace'
            : ts.isVariableStatement(node)
              ? 'const'
              : 'declaration'

/**
 * Every public declaration of one file, in source order: top-level
 * declarations, the members of namespaces, and the members of classes and
 * interfaces. Each item: { name, kind, signature, doc, depth }.
 */
function collect(file) {
  const text = fs.readFileSync(path.join(root, file), 'utf8')
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const items = []
  const undocumented = []
  const topNames = new Set()
  for (const s of source.statements) if (s.name && !ts.isModuleDeclaration(s)) topNames.add(s.name.getText(source))

  const add = (node, name, depth) => {
    const doc = docOf(source, node)
    items.push({ name, kind: kindOf(node), signature: signature(source, node), doc, depth })
    // Tags alone (`@throws` …) say what fails, not what the call does.
    if (!doc || /^@\w/.test(doc)) undocumented.push(`${file}: ${name}`)
  }
  const addMembers = (owner, prefix) => {
    let previous = null
    for (const member of owner.members) {
      if (member.modifiers && member.modifiers.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword)) continue
      if (member.name && ts.isPrivateIdentifier(member.name)) continue
      const name = `${prefix}.${memberName(source, member)}`
      // An overload without its own comment shares the one above it (an
      // EventEmitter's on/once overloads): listed, not counted as missing.
      if (previous && previous.name === name && !docOf(source, member)) {
        previous.signature += '\n' + signature(source, member)
        continue
      }
      add(member, name, 2)
      previous = items[items.length - 1]
    }
  }
  const visit = (statements, prefix) => {
    for (const node of statements) {
      if (ts.isExportAssignment(node) || ts.isImportDeclaration(node) || ts.isImportEqualsDeclaration(node)) continue
      if (ts.isExportDeclaration(node)) continue
      const qualified = (name) => (prefix ? `${prefix}.${name}` : name)
      if (ts.isModuleDeclaration(node)) {
        const name = qualified(node.name.getText(source))
        // A namespace merged with a class or function only holds its types:
        // its own comment is the class's. Others are documented themselves.
        if (!(topNames.has(node.name.getText(source)) && !prefix) || docOf(source, node)) add(node, name, 1)
        if (node.body && ts.isModuleBlock(node.body)) visit(node.body.statements, name)
        continue
      }
      if (ts.isVariableStatement(node)) {
        for (const decl of node.declarationList.declarations) {
          const doc = docOf(source, node)
          const name = qualified(decl.name.getText(source))
          items.push({ name, kind: 'const', signature: node.getText(source).replace(/^(export\s+)?(declare\s+)?/, ''), doc, depth: 1 })
          if (!doc) undocumented.push(`${file}: ${name}`)
        }
        continue
      }
      if (!node.name) continue
      const name = qualified(node.name.getText(source))
      add(node, name, 1)
      if (ts.isClassDeclaration(node) || ts.isInterfaceDeclaration(node)) addMembers(node, name)
    }
  }
  visit(source.statements, '')
  const header = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('//')) break
    header.push(line.replace(/^\/\/ ?/, ''))
  }
  return { items, undocumented, header: header.join('\n').trim() }
}

const slug = (heading) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-')

function render() {
  const { name, entries } = entryPoints()
  const modules = entries.map((entry) => ({ ...entry, ...collect(entry.file) }))
  const out = []
  out.push(`# ${name} API reference`)
  out.push('')
  out.push(
    '<!-- Generated by scripts/api-docs.js from the .d.ts files; do not edit. Regenerate with `npm run docs:api`. -->',
  )
  out.push('')
  out.push(
    'Generated from the TypeScript declarations that ship with the package: every entry, ' +
      'its signature and its TSDoc comment (guarantees, defaults, errors). ' +
      'What differs from the libraries these faces replace is in [compat.md](compat.md).',
  )
  out.push('')
  for (const mod of modules) {
    const heading = `\`require('${mod.specifier}')\``
    out.push(`- [${heading}](#${slug(heading)}) (\`${mod.file}\`)`)
  }
  for (const mod of modules) {
    out.push('')
    out.push(`## \`require('${mod.specifier}')\``)
    out.push('')
    if (mod.header) {
      out.push(mod.header.split(/\n{2,}/).map((paragraph) => paragraph.replace(/\n/g, ' ')).join('\n\n'))
      out.push('')
    }
    out.push(`Declarations: [\`${mod.file}\`](../${mod.file.split(path.sep).join('/')}).`)
    for (const item of mod.items) {
      out.push('')
      out.push(`${item.depth === 1 ? '###' : '####'} ${item.depth === 1 ? `${item.kind} ` : ''}\`${item.name}\``)
      out.push('')
      out.push('```ts')
      out.push(item.signature)
      out.push('```')
      if (item.doc) {
        out.push('')
        out.push(renderDoc(item.doc))
      }
    }
  }
  return { markdown: out.join('\n') + '\n', undocumented: modules.flatMap((mod) => mod.undocumented) }
}

module.exports = { render, OUTPUT }

if (require.main === module) {
  const { markdown, undocumented } = render()
  if (process.argv.includes('--check')) {
    let ok = true
    const current = fs.existsSync(OUTPUT) ? fs.readFileSync(OUTPUT, 'utf8') : ''
    if (current !== markdown) {
      console.error('docs/api.md is out of date with the .d.ts files: run `npm run docs:api` and commit it.')
      ok = false
    }
    if (undocumented.length) {
      console.error(`public declarations without a TSDoc comment:\n  ${undocumented.join('\n  ')}`)
      ok = false
    }
    process.exit(ok ? 0 : 1)
  }
  fs.writeFileSync(OUTPUT, markdown)
  console.log(`wrote ${path.relative(root, OUTPUT)}`)
  if (undocumented.length) console.log(`without a TSDoc comment:\n  ${undocumented.join('\n  ')}`)
}

// Static checks of web/'s module layout, run in node (no browser, no server):
// only protocol.js builds client frames (and only it, api.js and store.js
// produce JSON), only the transport touches the socket, close codes are
// named, every module says what it owns, and imports form no cycle.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');

/** Paths of web/**\/*.js relative to web/, with '/' separators. */
function moduleFiles() {
  /** @type {string[]} */
  const out = [];
  const walk = (/** @type {string} */ dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.js')) out.push(path.relative(webDir, full).split(path.sep).join('/'));
    }
  };
  walk(webDir);
  return out.sort();
}

/**
 * Code without its comments: block comments (JSDoc) and whole-line `//`
 * comments go; a comment after code on the same line stays, which can only
 * make a check stricter, never hide code.
 * @param {string} src
 */
function codeOf(src) {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').split('\n').map((l) => (l.trim().startsWith('//') ? '' : l)).join('\n');
}

/** Modules allowed to produce JSON text: frames, REST bodies, localStorage. */
const JSON_WRITERS = new Set(['protocol.js', 'api.js', 'store.js']);
/** The transport: the only modules that hold a socket and pass frames through untouched. */
const TRANSPORT = new Set(['connection.js', 'link.js']);
const FRAME_BUILDERS = new Set(['authFrame', 'pingFrame', 'sendTextFrame', 'deliveredReceiptFrame', 'readReceiptFrame',
  'typingFrame', 'presenceSubscribeFrame', 'presenceUnsubscribeFrame']);

/**
 * What in `file` breaks the protocol layout rules; empty when nothing does.
 * @param {string} file path relative to web/ @param {string} src
 */
function protocolViolations(file, src) {
  const code = codeOf(src);
  /** @type {string[]} */
  const found = [];
  if (file !== 'protocol.js' && /[{,]\s*['"]?type['"]?\s*:/.test(code)) {
    found.push('builds an object with a `type` key (client frames are built in protocol.js)');
  }
  if (!JSON_WRITERS.has(file) && /JSON\.stringify\s*\(/.test(code)) {
    found.push('calls JSON.stringify (only protocol.js, api.js and store.js produce JSON)');
  }
  for (const m of code.matchAll(/\.send\(\s*([^)]*)/g)) {
    const arg = m[1].trim();
    const call = arg.match(/^([A-Za-z_$][\w$]*)\s*\(/);
    const built = call && FRAME_BUILDERS.has(call[1]);
    const passedThrough = TRANSPORT.has(file) && (arg === 'frame' || (call && call[1] === 'encodeFrame'));
    if (!built && !passedThrough) found.push(`sends something not built by protocol.js: .send(${arg}`);
  }
  if (file !== 'connection.js' && /new\s+WebSocket\b/.test(code)) found.push('opens a WebSocket (only connection.js does)');
  if (file !== 'protocol.js') {
    if (/\.close\(\s*\d/.test(code)) found.push('closes a socket with a numeric code (use protocol.js\'s CLOSE_*)');
    if (/\.code\s*[!=]==?\s*\d/.test(code)) found.push('compares a close code with a number (use protocol.js\'s CLOSE_*)');
  }
  return found;
}

test('the layout check catches frames built or sent outside protocol.js', () => {
  assert.deepEqual(protocolViolations('outbox.js', "const f = protocol.sendTextFrame(item);\nlink.send(sendTextFrame(item));"), []);
  assert.equal(protocolViolations('typing.js', "link.send({ type: 'typing', conversation_id: id, active });").length, 2);
  assert.equal(protocolViolations('ui/chat.js', "const frame = {\n  conversation_id: id,\n  type: 'typing',\n};").length, 1);
  assert.equal(protocolViolations('receipts.js', 'link.send(frame);').length, 1, 'a bare variable outside the transport');
  assert.deepEqual(protocolViolations('link.js', 'return !!conn && conn.send(frame);'), []);
  assert.equal(protocolViolations('presence.js', 'ws.send(JSON.stringify(x));').length, 2);
  assert.equal(protocolViolations('connection.js', "ws.close(4000, 'late');").length, 1);
  assert.equal(protocolViolations('connection.js', 'if (ev.code === 4001) stop();').length, 1);
  assert.deepEqual(protocolViolations('typing.js', 'const TYPING_IDLE_MS = 4000;'), []);
  assert.equal(protocolViolations('ui/sidebar.js', "const ws = new WebSocket('ws://x');").length, 1);
  assert.deepEqual(protocolViolations('api.js', '/** @type {{type: string}} */\n// { type: "x" }\nbody: JSON.stringify(body),'), []);
});

test('only protocol.js builds client frames; only the transport sends them', () => {
  const files = moduleFiles();
  assert.ok(files.includes('protocol.js') && files.includes('app.js') && files.some((f) => f.startsWith('ui/')), files.join(' '));
  /** @type {string[]} */
  const problems = [];
  for (const file of files) {
    for (const p of protocolViolations(file, fs.readFileSync(path.join(webDir, file), 'utf8'))) problems.push(`web/${file}: ${p}`);
  }
  assert.deepEqual(problems, []);
});

test('every module starts with a comment saying what it owns', () => {
  for (const file of moduleFiles()) {
    const first = fs.readFileSync(path.join(webDir, file), 'utf8').split('\n')[0];
    assert.match(first, /^\/\/ \S.{10,}/, `web/${file} starts with a comment`);
  }
});

/** Relative imports of each module, resolved to paths relative to web/. */
function importGraph() {
  /** @type {Map<string, string[]>} */
  const graph = new Map();
  for (const file of moduleFiles()) {
    const src = codeOf(fs.readFileSync(path.join(webDir, file), 'utf8'));
    const deps = [...src.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"](\.[^'"]+)['"]/gm)]
      .map((m) => path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1])));
    graph.set(file, deps);
  }
  return graph;
}

test('imports point to existing modules and form no cycle', () => {
  const graph = importGraph();
  /** @type {Map<string, 'visiting'|'done'>} */
  const mark = new Map();
  /** @type {string[]} */
  const cycles = [];
  const visit = (/** @type {string} */ file, /** @type {string[]} */ stack) => {
    mark.set(file, 'visiting');
    for (const dep of graph.get(file) || []) {
      assert.ok(graph.has(dep), `web/${file} imports ${dep}, which does not exist`);
      if (mark.get(dep) === 'visiting') cycles.push([...stack.slice(stack.indexOf(dep)), file, dep].join(' → '));
      else if (!mark.has(dep)) visit(dep, [...stack, file]);
    }
    mark.set(file, 'done');
  };
  for (const file of graph.keys()) if (!mark.has(file)) visit(file, []);
  assert.deepEqual(cycles, []);
});

test('every module but the entry point loads without a page (nothing runs at import)', async () => {
  // Node has no DOM: a module that touched the page while loading would throw
  // here, and a named import that does not exist fails to link.
  for (const file of moduleFiles()) {
    if (file === 'app.js') continue;
    await import(pathToFileURL(path.join(webDir, file)).href);
  }
});

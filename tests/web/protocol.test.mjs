// Unit tests of web/protocol.js in node (no browser, no server): every client
// frame is built as the protocol says, encoding round-trips, and the
// constants mirror crates/parley-proto (close codes, limits) and index.html.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protocol from '../../web/protocol.js';

const repoRootDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('each client frame is built with its type and fields, and nothing else', () => {
  assert.deepEqual(protocol.authFrame('tok', 42), { type: 'auth', token: 'tok', since: 42 });
  assert.deepEqual(protocol.authFrame('tok', 0), { type: 'auth', token: 'tok', since: 0 }, 'cursor 0 is a cursor');
  assert.deepEqual(protocol.authFrame('tok', null), { type: 'auth', token: 'tok' }, 'no cursor: no since');
  assert.deepEqual(protocol.authFrame('tok', undefined), { type: 'auth', token: 'tok' });
  assert.deepEqual(protocol.pingFrame('7'), { type: 'ping', nonce: '7' });
  assert.deepEqual(
    protocol.sendTextFrame({ client_msg_id: 'web-1', conversation_id: 'c1', text: 'hi', created_ms: 5, failed: 'x' }),
    { type: 'send', client_msg_id: 'web-1', conversation_id: 'c1', kind: 'text', text: 'hi' },
    'outbox bookkeeping stays out of the frame',
  );
  assert.deepEqual(
    protocol.sendTextFrame({ client_msg_id: 'web-2', conversation_id: 'c1', text: 're', reply_to_seq: 4 }),
    { type: 'send', client_msg_id: 'web-2', conversation_id: 'c1', kind: 'text', text: 're', reply_to_seq: 4 },
    'a reply names the message it answers',
  );
  assert.deepEqual(
    protocol.sendTextFrame({
      client_msg_id: 'web-3', conversation_id: 'c1', text: 'cat', kind: 'image', created_ms: 5,
      media: { media_id: 'f7', content_type: 'image/png', size: 9, filename: 'cat.png' },
    }),
    { type: 'send', client_msg_id: 'web-3', conversation_id: 'c1', kind: 'image', text: 'cat', media: [{ media_id: 'f7' }] },
    'a photo names only its uploaded media; the caption is the text',
  );
  assert.equal(protocol.sendTextFrame({
    client_msg_id: 'web-4', conversation_id: 'c1', text: '', kind: 'file', media: { content_type: 'text/plain', size: 1 },
  }).kind, 'text', 'media not uploaded yet is never sent as a media message');
  assert.ok(protocol.isEventKind({ kind: 'reaction' }) && !protocol.isEventKind({ kind: 'text' }));
  assert.ok(protocol.QUICK_REACTIONS.length >= 6);
  assert.deepEqual(protocol.deliveredReceiptFrame('c1', 9),
    { type: 'receipt', conversation_id: 'c1', status: 'delivered', up_to_seq: 9 });
  assert.deepEqual(protocol.readReceiptFrame('c1', 9),
    { type: 'receipt', conversation_id: 'c1', status: 'read', up_to_seq: 9 });
  assert.deepEqual(protocol.typingFrame('c1', true), { type: 'typing', conversation_id: 'c1', active: true });
  assert.deepEqual(protocol.typingFrame('c1', false), { type: 'typing', conversation_id: 'c1', active: false });
  assert.deepEqual(protocol.presenceSubscribeFrame(['u1']), { type: 'presence_subscribe', user_ids: ['u1'] });
  assert.deepEqual(protocol.presenceUnsubscribeFrame(['u1']), { type: 'presence_unsubscribe', user_ids: ['u1'] });
});

test('frames encode to JSON text and server frames decode, junk is dropped', () => {
  const frame = protocol.readReceiptFrame('c1', 3);
  assert.deepEqual(JSON.parse(protocol.encodeFrame(frame)), frame);
  assert.deepEqual(protocol.decodeServerFrame('{"type":"pong","nonce":"1"}'), { type: 'pong', nonce: '1' });
  assert.equal(protocol.decodeServerFrame('not json'), null);
  assert.equal(protocol.decodeServerFrame('null'), null);
  assert.equal(protocol.decodeServerFrame('{"no_type":1}'), null);
  assert.equal(protocol.decodeServerFrame('{"type":5}'), null);
});

test('errors of control frames are recognised by their ref', () => {
  for (const ref of ['typing', 'receipt', 'ping', 'presence_subscribe', 'presence_unsubscribe']) {
    assert.ok(protocol.isControlFrameRef(ref), ref);
  }
  for (const ref of ['send', 'auth', 'web-123', undefined, null, '']) assert.ok(!protocol.isControlFrameRef(ref), String(ref));
});

/** `pub const NAME: type = value;` pairs of a Rust source file. @param {string} file */
function rustConsts(file) {
  const src = fs.readFileSync(path.join(repoRootDir, 'crates', 'parley-proto', 'src', file), 'utf8');
  const consts = new Map();
  for (const m of src.matchAll(/pub const (\w+): \w+ = ([\d_]+);/g)) consts.set(m[1], Number(m[2].replace(/_/g, '')));
  assert.ok(consts.size > 0, `found constants in ${file}`);
  return consts;
}

test('close codes mirror crates/parley-proto/src/close_code.rs', () => {
  for (const [name, value] of rustConsts('close_code.rs')) {
    assert.equal(/** @type {any} */ (protocol)[`CLOSE_${name}`], value, `CLOSE_${name}`);
  }
});

test('limits mirror crates/parley-proto/src/limits.rs', () => {
  for (const [name, value] of rustConsts('limits.rs')) {
    assert.equal(/** @type {any} */ (protocol)[name], value, name);
  }
});

test('the username pattern follows the limits', () => {
  const { USERNAME_MIN_CHARS: min, USERNAME_MAX_CHARS: max, USERNAME_PATTERN: re } = protocol;
  assert.ok(re.test('a'.repeat(min)));
  assert.ok(re.test('a'.repeat(max)));
  assert.ok(!re.test('a'.repeat(min - 1)));
  assert.ok(!re.test('a'.repeat(max + 1)));
  assert.ok(re.test('alice_smith.2'));
  assert.ok(!re.test('Alice'));
  assert.ok(!re.test('al ice'));
});

test('the log-in form\'s length attributes follow the limits', () => {
  const html = fs.readFileSync(path.join(repoRootDir, 'web', 'index.html'), 'utf8');
  const input = (/** @type {string} */ id) => {
    const m = html.match(new RegExp(`<input id="${id}"[^>]*>`, 's'));
    assert.ok(m, `#${id} in index.html`);
    const attr = (/** @type {string} */ a) => Number((m[0].match(new RegExp(`${a}="(\\d+)"`)) || [])[1]);
    return { min: attr('minlength'), max: attr('maxlength') };
  };
  assert.deepEqual(input('auth-username'), { min: protocol.USERNAME_MIN_CHARS, max: protocol.USERNAME_MAX_CHARS });
  assert.deepEqual(input('auth-password'), { min: protocol.PASSWORD_MIN_CHARS, max: protocol.PASSWORD_MAX_CHARS });
});

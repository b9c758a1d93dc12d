// Unit tests of the web client's pure modules, run in node (no browser, no server).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  errorText, presenceText, parseUsernames, normalizeUsername, byteLength, newClientMsgId, initials, listTime,
} from '../../web/format.js';
import { backoffDelay } from '../../web/connection.js';
import { applyEvent, withReaction, reactionOf, isEvent } from '../../web/events.js';
import { declaredType, kindFor, sizeText, mediaLabel } from '../../web/media.js';

test('files are declared and sent as the server takes them (§9)', () => {
  assert.equal(declaredType({ type: 'image/png' }), 'image/png');
  assert.equal(declaredType({ type: 'image/jpg' }), 'image/jpeg');
  assert.equal(declaredType({ type: 'audio/webm;codecs=opus' }), 'audio/webm');
  assert.equal(declaredType({ type: 'image/svg+xml' }), 'application/octet-stream', 'not decoded: a plain file');
  assert.equal(declaredType({ type: '' }), 'application/octet-stream');
  assert.deepEqual(['image/webp', 'video/mp4', 'audio/ogg', 'application/pdf', 'application/octet-stream'].map(kindFor),
    ['image', 'video', 'audio', 'file', 'file']);
  assert.deepEqual([0, 1, 999, 1000, 2500, 10_400_000, 3e9].map(sizeText),
    ['0 bytes', '1 byte', '999 bytes', '1 KB', '2.5 KB', '10 MB', '3 GB']);
  assert.equal(mediaLabel({ kind: 'image' }), 'Photo');
  assert.equal(mediaLabel({ kind: 'image', text: 'my cat' }), 'my cat');
  assert.equal(mediaLabel({ kind: 'audio', media: [{ media_id: 'f1', content_type: 'audio/webm', size: 1 }] }), 'Voice message');
  assert.equal(mediaLabel({ kind: 'file', media: [{ media_id: 'f1', content_type: 'text/plain', size: 1, filename: 'a.txt' }] }), 'a.txt');
  assert.equal(mediaLabel({ kind: 'file', media: { filename: 'b.txt' } }), 'b.txt', 'an outbox item');
});

test('every error code of the spec has its own human sentence', () => {
  const codes = ['bad_request', 'unauthorized', 'forbidden', 'not_found', 'conflict', 'payload_too_large',
    'rate_limited', 'resync_required', 'internal', 'unavailable', 'network'];
  const texts = codes.map((c) => errorText(c));
  assert.equal(new Set(texts).size, codes.length, 'distinct sentences');
  for (const t of texts) {
    assert.match(t, /^[A-Z].*[.…]$/, `a sentence: ${t}`);
    assert.doesNotMatch(t, /_/, `no codes leak into the text: ${t}`);
  }
  assert.match(errorText('rate_limited', { retryAfterMs: 2500 }), /3 s/);
  assert.match(errorText('unauthorized', { context: 'login' }), /Wrong username or password/);
  assert.match(errorText('conflict', { context: 'register' }), /already taken/);
  assert.match(errorText('not_found', { context: 'user', subject: 'zed' }), /“zed”/);
  assert.match(errorText('payload_too_large', { context: 'send' }), /too long/);
  assert.match(errorText('something_new'), /went wrong/);
});

test('presence text', () => {
  assert.equal(presenceText({ online: true }), 'online');
  assert.equal(presenceText({ online: false }), '');
  assert.equal(presenceText(null), '');
  assert.equal(presenceText({ online: false, last_seen_ms: Date.now() - 5000 }), 'last seen just now');
  assert.equal(presenceText({ online: false, last_seen_ms: Date.now() - 5 * 60000 }), 'last seen 5 minutes ago');
  assert.equal(presenceText({ online: false, last_seen_ms: Date.now() - 60000 }), 'last seen 1 minute ago');
  assert.match(presenceText({ online: false, last_seen_ms: Date.now() - 10 * 86400000 }), /^last seen .+ at /);
});

test('usernames are parsed forgivingly', () => {
  assert.deepEqual(parseUsernames(' Alice, bob;carol  @dave,,bob '), ['alice', 'bob', 'carol', 'dave']);
  assert.deepEqual(parseUsernames(''), []);
  assert.equal(normalizeUsername('  @Bob '), 'bob');
});

test('small helpers', () => {
  assert.equal(byteLength('héllo'), 6);
  assert.equal(byteLength('👋'), 4);
  const a = newClientMsgId();
  const b = newClientMsgId();
  assert.notEqual(a, b);
  assert.match(a, /^web-[0-9a-f-]{32,36}$/);
  assert.equal(initials('alice_smith'), 'AS');
  assert.equal(initials('bob'), 'BO');
  assert.equal(listTime(0), '');
  assert.match(listTime(Date.now()), /\d/);
});

test('reconnect backoff grows exponentially, is capped, and is fully jittered', () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const exp = Math.min(5000, 500 * 2 ** attempt);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt);
      assert.ok(d >= 0 && d <= exp, `attempt ${attempt}: ${d} within [0, ${exp}]`);
    }
  }
  const samples = new Set(Array.from({ length: 50 }, () => backoffDelay(6)));
  assert.ok(samples.size > 10, 'jitter spreads clients out');
});

test('message events change their target as the server does (§8)', () => {
  /** @type {any} */
  const m = { seq: 3, kind: 'text', text: 'helo', sender_id: 'u1', sent_at_ms: 1 };
  applyEvent(m, { seq: 4, kind: 'edit', target_seq: 3, text: 'hello', sender_id: 'u1', sent_at_ms: 50 });
  assert.equal(m.text, 'hello');
  assert.equal(m.edited_at_ms, 50);
  applyEvent(m, { seq: 5, kind: 'reaction', target_seq: 3, emoji: '👍', sender_id: 'u2' });
  applyEvent(m, { seq: 6, kind: 'reaction', target_seq: 3, emoji: '❤️', sender_id: 'u3' });
  applyEvent(m, { seq: 7, kind: 'reaction', target_seq: 3, emoji: '👍', sender_id: 'u3' });
  assert.deepEqual(m.reactions, [{ emoji: '👍', user_ids: ['u2', 'u3'] }], 'one reaction per user; emptied emoji go');
  assert.equal(reactionOf(m, 'u3'), '👍');
  applyEvent(m, { seq: 8, kind: 'reaction', target_seq: 3, emoji: '', sender_id: 'u2' });
  assert.deepEqual(m.reactions, [{ emoji: '👍', user_ids: ['u3'] }], "'' removes mine");
  // Applying the same events again in order gives the same state.
  const again = { ...m, reactions: withReaction(m.reactions, 'u3', '👍') };
  assert.deepEqual(again.reactions, m.reactions);
  applyEvent(m, { seq: 9, kind: 'delete', target_seq: 3, sender_id: 'u1' });
  assert.deepEqual({ deleted: m.deleted, text: m.text, reactions: m.reactions, edited: m.edited_at_ms },
    { deleted: true, text: undefined, reactions: undefined, edited: undefined });
  applyEvent(m, { seq: 10, kind: 'edit', target_seq: 3, text: 'back?', sender_id: 'u1' });
  assert.equal(m.text, undefined, 'a deleted message stays deleted');
  assert.ok(isEvent({ kind: 'edit' }) && isEvent({ kind: 'delete' }) && !isEvent({ kind: 'system' }));
});

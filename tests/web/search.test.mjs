// Search in the sidebar: the searchbox filters the chat list by title; from
// two characters on it lists matching messages ("Search results", CJK
// included); choosing one opens its chat at that message, loading older
// history back to it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, waitText, waitCount, waitVisible, until, shot, apiRequest, PASSWORD,
} from './helpers.mjs';

/** @type {import('./helpers.mjs').Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  // Seeding sends a few hundred messages over HTTP at once.
  server = await startServer({ env: {
    PARLEY_SEND_RATE_PER_SEC: '100000',
    PARLEY_SEND_BURST: '100000',
    PARLEY_HTTP_REQUESTS_PER_TOKEN_PER_SEC: '100000',
  } });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
});

/** @param {string} method @param {string} p @param {unknown} [body] @param {string} [token] */
const api = (method, p, body, token) => apiRequest(server, method, p, body, token);

test('filter the list, find messages, jump to one far back', { timeout: 180000 }, async () => {
  const [aliceName, bobName, carolName] = ['alice', 'bob', 'carol'].map(uniqueName);
  for (const n of [aliceName, bobName, carolName]) await api('POST', '/users', { username: n, password: PASSWORD });
  const { token } = await api('POST', '/sessions', { username: aliceName, password: PASSWORD });
  const { user_id: bobId } = await api('GET', `/users?username=${bobName}`, undefined, token);
  const { user_id: carolId } = await api('GET', `/users?username=${carolName}`, undefined, token);
  const { conversation_id: direct } = await api('POST', '/conversations/direct', { user_id: bobId }, token);
  const { conversation_id: group } = await api('POST', '/groups', { name: 'Book club', member_ids: [bobId, carolId] }, token);
  let n = 0;
  const send = (cid, text) => api('POST', `/conversations/${cid}/messages`, { client_msg_id: `seed-${n++}`, kind: 'text', text }, token);
  await send(direct, 'first words');
  await send(direct, 'the needle in a haystack');
  for (let i = 0; i < 180; i++) await send(direct, `filler ${i}`);
  await send(group, 'we read 三体 next, 我们喝咖啡吧');
  await send(group, 'another needle, newer');

  const alice = await openUser(browser, server.url, aliceName, { register: false });
  const { page } = alice;
  await waitVisible(page.getByRole('listitem', { name: 'Book club' }));
  await waitVisible(page.getByRole('listitem', { name: bobName }));

  // One character filters the list by title, and searches no messages.
  const box = page.getByRole('searchbox', { name: 'Search' });
  await box.fill('B');
  await waitVisible(page.getByRole('listitem', { name: 'Book club' }));
  await box.fill('Book');
  await waitCount(page.getByRole('listitem', { name: bobName }), 0);
  await waitVisible(page.getByRole('listitem', { name: 'Book club' }));

  // Two characters and more search messages, newest first.
  await box.fill('needle');
  const results = page.getByRole('list', { name: 'Search results' });
  await waitCount(results.getByRole('listitem'), 2);
  const texts = await results.getByRole('listitem').allTextContents();
  assert.match(texts[0], /another needle, newer/);
  assert.match(texts[1], /the needle in a haystack/);
  await shot(page, 'search-results');

  // CJK, two characters.
  await box.fill('咖啡');
  await waitCount(results.getByRole('listitem'), 1);
  await waitText(results, '我们喝咖啡吧');

  // Jump: the chat opens at the old message, history loaded back to it.
  await box.fill('haystack');
  await waitCount(results.getByRole('listitem'), 1);
  await waitText(results, 'the needle in a haystack');
  await results.getByRole('button').first().click();
  await waitText(page.locator('#chat-title'), bobName);
  const found = page.locator('#message-items .msg').filter({ has: page.locator('.text', { hasText: 'the needle in a haystack' }) });
  await waitVisible(found);
  await until(async () => {
    const b = await page.locator('#messages').boundingBox();
    const r = await found.boundingBox();
    return b && r && r.y >= b.y && r.y + r.height <= b.y + b.height;
  }, 'the found message in view');
  await shot(page, 'search-jump');

  // Clearing the box brings the whole list back.
  await box.fill('');
  await waitVisible(page.getByRole('listitem', { name: 'Book club' }));
  await waitVisible(page.getByRole('listitem', { name: bobName }));
  await waitCount(page.getByRole('list', { name: 'Search results' }), 0);
  assert.deepEqual(alice.errors, []);
  await alice.context.close();
});

// Long chats stay fast: a 10,000-message chat is scrolled back to its first
// message and forward to its newest, and the message log never holds more
// than a fixed number of DOM nodes (a window of messages, not all of them).
// A bound on nodes, never on time.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, uniqueName, openUser, waitText, until, shot, PASSWORD,
} from './helpers.mjs';

const TOTAL = 10000;
/** At most this many bubbles and nodes in the log, whatever the chat's length. */
const MAX_BUBBLES = 200;
const MAX_NODES = 3000;

/** @type {import('./helpers.mjs').Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  // Seeding 10,000 messages quickly needs the send rate limit out of the way.
  server = await startServer({ env: {
    PARLEY_SEND_RATE_PER_SEC: '1000000',
    PARLEY_SEND_BURST: '1000000',
    // The test fills the chat over HTTP: lift the per-token request limit too.
    PARLEY_HTTP_REQUESTS_PER_TOKEN_PER_SEC: '1000000',
  } });
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
});

async function api(method, p, body, token) {
  const res = await fetch(`${server.url}/v1${p}`, {
    method, body: body && JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  assert.ok(res.ok, `${method} ${p} -> ${res.status}`);
  return res.status === 204 ? null : res.json();
}

test('a 10,000-message chat keeps a bounded DOM while scrolling through it', { timeout: 300000 }, async () => {
  const aliceName = uniqueName('alice');
  const bobName = uniqueName('bob');
  await api('POST', '/users', { username: aliceName, password: PASSWORD });
  const { user_id: bobId } = await api('POST', '/users', { username: bobName, password: PASSWORD });
  const { token } = await api('POST', '/sessions', { username: aliceName, password: PASSWORD });
  const { conversation_id: cid } = await api('POST', '/conversations/direct', { user_id: bobId }, token);
  const text = (/** @type {number} */ i) => `long ${String(i).padStart(5, '0')}`;
  // Many sends in flight share the store's group commits.
  const t0 = Date.now();
  let next = 1;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next <= TOTAL) {
      const i = next++;
      await api('POST', `/conversations/${cid}/messages`, { client_msg_id: `seed-${i}`, kind: 'text', text: text(i) }, token);
    }
  }));

  console.log(`seeded ${TOTAL} messages in ${Date.now() - t0} ms`);
  // In flight together, they were numbered in commit order: the ends come from the server.
  const newest = (await api('GET', `/conversations/${cid}/messages?limit=1`, undefined, token)).messages[0].text;
  const oldest = (await api('GET', `/conversations/${cid}/messages?after_seq=0&limit=1`, undefined, token)).messages[0].text;
  const t1 = Date.now();
  // Alice reads her own chat (nothing unread: it opens at the newest).
  const { page } = await openUser(browser, server.url, aliceName, { register: false });
  await page.getByRole('listitem', { name: bobName }).click();
  const log = page.locator('#messages');
  await until(async () => (await page.locator('#message-items .msg').count()) > 0, 'the first page');
  const measure = () => page.evaluate(() => ({
    nodes: document.querySelectorAll('#message-items *').length,
    bubbles: document.querySelectorAll('#message-items .msg').length,
    first: document.querySelector('#message-items .msg .text')?.textContent || '',
    last: [...document.querySelectorAll('#message-items .msg .text')].pop()?.textContent || '',
  }));
  let most = { nodes: 0, bubbles: 0 };
  const check = async () => {
    const m = await measure();
    most = { nodes: Math.max(most.nodes, m.nodes), bubbles: Math.max(most.bubbles, m.bubbles) };
    assert.ok(m.bubbles <= MAX_BUBBLES, `${m.bubbles} bubbles in the DOM`);
    assert.ok(m.nodes <= MAX_NODES, `${m.nodes} nodes in the DOM`);
    return m;
  };

  // Back to the very first message, a scroll at a time.
  let m = await check();
  for (let i = 0; i < 2000 && m.first !== oldest; i++) {
    await log.evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    await page.waitForTimeout(20);
    m = await check();
  }
  assert.equal(m.first, oldest, 'scrolled back to the first message');
  console.log(`scrolled back in ${Date.now() - t1} ms`);
  await waitText(page.locator('#history-status'), 'beginning of the chat');
  await shot(page, 'longchat-top');

  // And forward to the newest again.
  for (let i = 0; i < 2000 && m.last !== newest; i++) {
    await log.evaluate((el) => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); });
    await page.waitForTimeout(20);
    m = await check();
  }
  assert.equal(m.last, newest, 'scrolled forward to the newest message');
  await shot(page, 'longchat-bottom');
  console.log(`longest DOM: ${most.bubbles} bubbles, ${most.nodes} nodes`);
});

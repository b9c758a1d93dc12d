// Shared helpers for the browser tests: start/stop a real `parley serve`,
// launch Debian's Chromium through playwright-core, and small waiting
// assertions (playwright-core has no `expect`, so we poll with a deadline).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const artifactsDir = path.join(here, 'artifacts');
fs.mkdirSync(artifactsDir, { recursive: true });

/** Default wait for UI conditions; never more than 15 s. */
export const WAIT_MS = 15000;

function serverBinary() {
  if (process.env.PARLEY_BIN) return process.env.PARLEY_BIN;
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target');
  return path.join(targetDir, 'debug', 'parley');
}

/**
 * A running `parley serve`. `stop()` sends SIGTERM, `kill()` SIGKILL; both by PID.
 * @typedef {{proc: import('node:child_process').ChildProcess, port: number, url: string,
 *   dataDir: string, stop: () => Promise<void>, kill: () => Promise<void>, log: () => string}} Server
 */

/** Servers still running; killed by PID if this test process exits early. */
const live = new Set();
process.once('exit', () => {
  for (const p of live) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ } }
});

/**
 * Start the server on 127.0.0.1:`port` (0 = any) with `dataDir` (fresh temp dir by default).
 * @param {{port?: number, dataDir?: string, env?: Record<string, string>}} [opts]
 * @returns {Promise<Server>}
 */
export async function startServer(opts = {}) {
  const dataDir = opts.dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'parley-web-'));
  const bin = serverBinary();
  if (!fs.existsSync(bin)) throw new Error(`server binary not found: ${bin} (build it or set PARLEY_BIN)`);
  const proc = spawn(bin, ['serve', '--listen', `127.0.0.1:${opts.port || 0}`, '--data-dir', dataDir], {
    env: { ...process.env, PARLEY_ARGON2_MEMORY_KIB: '1024', RUST_LOG: process.env.RUST_LOG || 'warn', ...(opts.env || {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  live.add(proc);
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.once('exit', () => live.delete(proc));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not report its port within 20 s:\n${output}`)), 20000);
    const onData = (/** @type {Buffer} */ chunk) => {
      output += chunk.toString();
      const m = output.match(/parley listening on [^\s:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (c) => { output += c.toString(); });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited early (${code}):\n${output}`)); });
  });
  const end = async (/** @type {NodeJS.Signals} */ sig) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    try { process.kill(/** @type {number} */ (proc.pid), sig); } catch { return; }
    const t = setTimeout(() => { try { process.kill(/** @type {number} */ (proc.pid), 'SIGKILL'); } catch { /* gone */ } }, 10000);
    await exited;
    clearTimeout(t);
  };
  return {
    proc, port, dataDir, url: `http://127.0.0.1:${port}`,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    log: () => output,
  };
}

/**
 * Launch headless Debian Chromium (never a downloaded browser). A fake
 * microphone (a tone) answers `getUserMedia` without a prompt, and media may
 * play without a gesture, so voice notes can be recorded and played back.
 */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required'],
    timeout: 30000,
  });
}

let counter = 0;
/** A unique, valid username (3–32 of [a-z0-9_.]). @param {string} base */
export function uniqueName(base) {
  counter += 1;
  return `${base}_${Date.now().toString(36).slice(-5)}${process.pid % 1000}${counter}`.slice(0, 32);
}

export const PASSWORD = 'correct horse battery';

/**
 * A signed-up user in its own browser context.
 * @param {import('playwright-core').Browser} browser @param {string} url @param {string} name
 * @param {{viewport?: {width: number, height: number}, register?: boolean}} [opts]
 */
export async function openUser(browser, url, name, opts = {}) {
  const context = await browser.newContext({ viewport: opts.viewport || { width: 1280, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.getByRole('textbox', { name: 'Username' }).fill(name);
  await page.getByRole('textbox', { name: 'Password' }).fill(PASSWORD);
  await page.getByRole('button', { name: opts.register === false ? 'Log in' : 'Create account' }).click();
  await page.getByRole('button', { name: 'New chat' }).waitFor({ state: 'visible' });
  return { context, page, name, errors };
}

/** Start (or reopen) a direct chat with `other` from `page`. */
export async function startDirectChat(page, other) {
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.getByRole('textbox', { name: 'Find user' }).fill(other);
  await page.getByRole('button', { name: 'Start chat' }).click();
  await waitText(page.locator('#chat-title'), other);
}

/** Type a message in the open chat and press Enter. */
export async function sendMessage(page, text) {
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
}

/**
 * Poll `fn` until it returns a truthy value, or fail after `timeout`.
 * @template T @param {() => Promise<T>|T} fn @param {string} what
 * @returns {Promise<T>}
 */
export async function until(fn, what, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Wait until the locator's text contains (string) or matches (RegExp) `expected`. */
export async function waitText(locator, expected, timeout = WAIT_MS) {
  let text = '';
  await until(async () => {
    text = (await locator.first().textContent({ timeout: 1000 })) || '';
    return typeof expected === 'string' ? text.includes(expected) : expected.test(text);
  }, `text ${expected} (had "${text}")`, timeout).catch((e) => { throw new Error(`${e.message}; text was "${text}"`); });
}

/** Wait until the locator matches exactly `n` elements. */
export async function waitCount(locator, n, timeout = WAIT_MS) {
  let c = -1;
  await until(async () => (c = await locator.count()) === n, `count ${n}`, timeout)
    .catch((e) => { throw new Error(`${e.message}; count was ${c}`); });
}

/** Wait until the locator is visible. */
export function waitVisible(locator, timeout = WAIT_MS) {
  return locator.first().waitFor({ state: 'visible', timeout });
}

/** Texts of the message bubbles in the open chat, in DOM order. */
export function bubbleTexts(page) {
  return page.locator('#message-items .msg:not(.system) .text').allTextContents();
}

/** The tick label (Sending/Sent/Delivered/Read) on my bubble with `text`. */
export async function tickOf(page, text) {
  const bubble = page.locator('#message-items .msg.own').filter({ has: page.locator('.text', { hasText: text }) }).last();
  return bubble.locator('.tick').getAttribute('aria-label', { timeout: 2000 });
}

/** Wait until my bubble with `text` shows tick `label`. */
export async function waitTick(page, text, label, timeout = WAIT_MS) {
  let cur = null;
  await until(async () => (cur = await tickOf(page, text)) === label, `tick ${label} on "${text}"`, timeout)
    .catch((e) => { throw new Error(`${e.message}; tick was ${cur}`); });
}

const TICK_ORDER = ['Sending', 'Sent', 'Delivered', 'Read'];

/** Wait until my bubble with `text` shows tick `label` or a later one (Sent < Delivered < Read). */
export async function waitTickAtLeast(page, text, label, timeout = WAIT_MS) {
  let cur = null;
  const want = TICK_ORDER.indexOf(label);
  await until(async () => TICK_ORDER.indexOf(cur = await tickOf(page, text)) >= want, `tick ≥ ${label} on "${text}"`, timeout)
    .catch((e) => { throw new Error(`${e.message}; tick was ${cur}`); });
}

/** Screenshot into tests/web/artifacts/. */
export async function shot(page, name) {
  await page.screenshot({ path: path.join(artifactsDir, `${name}.png`) });
}

/**
 * A JSON request to `server`'s REST API (seeding data without the UI);
 * fails the test on an error status. Resolves the body (null for 204).
 * @param {Server} server @param {string} method @param {string} p path below /v1
 * @param {unknown} [body] @param {string} [token]
 */
export async function apiRequest(server, method, p, body, token) {
  const res = await fetch(`${server.url}/v1${p}`, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  if (!res.ok) throw new Error(`${method} ${p} -> ${res.status}`);
  return res.status === 204 ? null : res.json();
}

// The signed-in session: who I am (token, user id, device, username), the
// REST client that carries the token, and logging in, out and the end of a
// session the server revoked. Starting and stopping everything else for a
// session is `app.js`'s job; it registers what happens on a revoked token.

import { Api } from './api.js';
import * as store from './store.js';

/** @type {import('./store.js').StoredSession|null} */
let current = null;

/** Called when an authenticated request or the socket finds the token revoked. */
let onUnauthorized = () => {};

/** The REST client; every call carries the current session's token. */
export const api = new Api(() => current && current.token, () => onUnauthorized());

/** @param {() => void} fn */
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

/** The signed-in session, or null on the log-in screen. */
export function currentSession() { return current; }

/** My user id ('' when signed out). */
export function me() { return current ? current.user_id : ''; }

/** The session stored by an earlier visit, if any. */
export function storedSession() { return store.loadSession(); }

/** Make `session` the current one and remember it across reloads. @param {import('./store.js').StoredSession} session */
export function begin(session) {
  current = session;
  store.saveSession(session);
}

/** Forget the session here and in storage (after logout or a revoked token). */
export function end() {
  store.saveSession(null);
  current = null;
}

/**
 * Create the account (when `register`) and log in. Throws the `ApiError` of
 * the step that failed, with `step` set to 'register' or 'login' so the form
 * can word the error for it.
 * @param {string} name normalized username @param {string} password @param {boolean} register
 * @param {string} [displayName] the name others see (sign-up only)
 * @returns {Promise<import('./store.js').StoredSession>}
 */
export async function signIn(name, password, register, displayName) {
  if (register) {
    try {
      await api.register(name, password, displayName);
    } catch (e) {
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { step: 'register' });
    }
  }
  try {
    const s = await api.login(name, password);
    return { token: s.token, user_id: s.user_id, device_id: s.device_id, username: name };
  } catch (e) {
    throw Object.assign(e instanceof Error ? e : new Error(String(e)), { step: 'login' });
  }
}

/** Revoke the token on the server; the local session ends either way. */
export async function signOut() {
  try { await api.logout(); } catch { /* the local session ends anyway */ }
}
